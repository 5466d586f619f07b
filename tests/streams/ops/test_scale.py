"""``recon scale`` from 4 to 8 partitions under traffic, on the real broker and database: open
groups of the old layout, counterparts that arrive after the change through the old inputs,
and producers that then move to the new inputs. The ground truth holds exactly."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.postgres import generations
from streams.cli import main
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import Process, env_for, free_port, pipeline
from streams.ops.describe import group_lags
from streams.ops.generations import generation
from streams.ops.scale import scaled_env
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import differences, expected_counts, row_counts
from streams.worker.settings import WorkerSettings
from streams.worker.topics import topic_names
from tests.pipeline_support import use_env

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


def _event_ids(records: list[Any]) -> set[str]:
    return {
        r.value["event_id"] for r in records if isinstance(r.value, dict) and "event_id" in r.value
    }


def _wait(done: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_scaling_from_4_to_8_partitions_under_traffic_keeps_the_ground_truth(
    kafka: KafkaSettings,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = simulate(3000, seed=808, config=MATCH)
    truth = truth_of(sim)
    cut = len(sim.records) * 6 // 10
    before, after = replace(sim, records=sim.records[:cut]), replace(sim, records=sim.records[cut:])
    early, late = _event_ids(before.records), _event_ids(after.records)
    across = [
        m for m in truth.matches.values()
        if {*m["payment_event_ids"], *m["ledger_event_ids"]} & early
        and {*m["payment_event_ids"], *m["ledger_event_ids"]} & late
    ]  # fmt: skip
    assert across  # groups open at the change whose counterparts arrive after it

    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=4)
    admin = AdminClient(kafka.confluent_config())
    new_topics: list[str] = []
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        pipe.sink()
        t = pipe.settings.topics
        produce(before, kafka, t, 4, fmt="avro", flush_heartbeats=False)
        inputs = [TopicPartition(name, p) for name in (t.payments, t.ledger) for p in range(4)]
        _wait(
            lambda: all(p.lag == 0 for p in group_lags(admin, pipe.settings.app_id, inputs)),
            120,
            "generation 0 to consume the first part",
        )

        env = env_for(pipe.settings, tmp_path / "data", schema, database_url)
        use_env(monkeypatch, env)
        outcome: dict[str, int] = {}
        argv = ["scale", "--partitions", "8", "--timeout", "300", "--drain-idle", "5",
                "--work-dir", str(tmp_path / "scale")]  # fmt: skip
        scaling = threading.Thread(target=lambda: outcome.update(code=main(argv)))
        scaling.start()
        # Under traffic: the rest still goes to the old inputs while the scale runs.
        produce(after, kafka, t, 4, fmt="avro", rate=3000, flush_heartbeats=False)
        scaling.join(600)
        out = capsys.readouterr().out
        assert outcome.get("code") == 0, out
        assert "switched: readers see generation 1 on 8 partitions" in out

        # The deploy of generation 1 on the new layout; producers now write to its inputs.
        new_env = {**os.environ, **scaled_env(os.environ, generation(os.environ, 0), 8)}
        new_env["RECON_GENERATION"] = "1"
        new_env["RECON_WEB_PORT"] = str(free_port())
        new = generation(new_env, 1)
        new_topics = topic_names(new.worker)
        assert new.worker.partitions == 8
        for name, argv_ in (
            ("worker-g1", ["worker", "--no-create-topics"]),
            ("sink-g1", ["sink", "--log-level", "WARNING"]),
        ):
            proc = Process(name, [sys.executable, "-m", "streams.cli", *argv_], new_env,
                           tmp_path / f"{name}.log").start()  # fmt: skip
            pipe.processes.append(proc)
        produce(replace(sim, records=[]), kafka, new.worker.topics, 8, fmt="avro")

        with pipe.pg() as conn:
            want = expected_counts(truth)

            def settled() -> bool:
                with contextlib.suppress(psycopg.Error):
                    return row_counts(conn) == want
                return False

            _wait(settled, 180, f"the ground truth {want} in the readers' schema")
            assert differences(truth, conn) == []
            assert generations.statuses(conn, schema) == {0: "retired", 1: "live"}
    for future in admin.delete_topics(new_topics, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)

"""``recon verify`` on a real pipeline run: it passes on a clean run, and it fails naming the
event or the row when a row is deleted by hand, when a match is duplicated by hand, and when an
input event is in no place at all (a worker that acked a record it never processed)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.cli import main
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import Pipeline, env_for, pipeline
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import expected_counts
from streams.worker.partitioning import partition_for
from streams.worker.settings import WorkerSettings
from tests.pipeline_support import use_env, wait_for_counts

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


def _verify(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    use_env(
        monkeypatch,
        env_for(pipe.settings, pipe.work_dir / "verify", pipe.schema, pipe.database_url),
    )
    code = main(["verify", "--wait", "60"])
    return code, capsys.readouterr().out


def test_verify_passes_on_a_clean_run_and_names_each_planted_fault(
    kafka: KafkaSettings,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = simulate(2000, seed=404, config=MATCH)
    truth = truth_of(sim)
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=3)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        worker = pipe.worker()
        pipe.sink()
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)

            code, out = _verify(pipe, monkeypatch, capsys)
            assert code == 0, out
            assert "OK: every input is in exactly one place" in out
            assert re.search(rf"^match rows\s+{len(truth.matches):,}$", out, re.M), out

            # 1. A match row deleted by hand: its events are in no place.
            row = conn.execute(
                "SELECT match_id, payment_event_ids[1] FROM recon_matches"
                " WHERE rule = 'exact' ORDER BY match_id LIMIT 1"
            ).fetchone()
            assert row is not None
            match_id, payment_id = str(row[0]), str(row[1])
            saved = conn.execute(
                "SELECT * FROM recon_matches WHERE match_id = %s", [match_id]
            ).fetchone()
            assert saved is not None
            conn.execute("DELETE FROM recon_matches WHERE match_id = %s", [match_id])
            code, out = _verify(pipe, monkeypatch, capsys)
            assert code == 1
            assert f"FAIL in no place: payment event {payment_id!r}" in out
            placeholders = ", ".join(["%s"] * len(saved))
            conn.execute(f"INSERT INTO recon_matches VALUES ({placeholders})", list(saved))

            # 2. A match duplicated by hand under another id: its events are counted twice.
            conn.execute(
                "INSERT INTO recon_matches SELECT 'copy-' || match_id, reference, flow, rule,"
                " currency, payment_amount_minor, ledger_amount_minor, difference_minor,"
                " payment_event_ids, ledger_event_ids, first_event_time, matched_at,"
                " exception_id, written_at FROM recon_matches WHERE match_id = %s",
                [match_id],
            )
            code, out = _verify(pipe, monkeypatch, capsys)
            assert code == 1
            assert f"FAIL counted more than once: payment event {payment_id!r}" in out
            assert f"match copy-{match_id}" in out
            conn.execute("DELETE FROM recon_matches WHERE match_id = %s", [f"copy-{match_id}"])
            code, out = _verify(pipe, monkeypatch, capsys)
            assert code == 0, out

        # 3. An input event in no place: a worker acked a record it never processed (what
        # faust-streaming #315 does on an agent error). Stop the worker, write the event, and
        # move the worker group's committed offset past it.
        worker.stop()
        t = pipe.settings.topics
        ref = "VERIFY-LOST-1"
        partition = partition_for(ref.encode(), pipe.settings.partitions)
        p = Producer(kafka.confluent_config())
        event = {
            "event_id": "lost-p1",
            "reference": ref,
            "amount_minor": 4200,
            "currency": "EUR",
            "event_time": 1_767_225_600_000,
            "kind": "payment",
        }
        p.produce(t.payments, key=ref.encode(), value=orjson.dumps(event), partition=partition)
        assert p.flush(30) == 0
        c = Consumer({**kafka.confluent_config(), "group.id": pipe.settings.app_id})
        try:
            _, high = c.get_watermark_offsets(TopicPartition(t.payments, partition), timeout=30)
            c.commit(offsets=[TopicPartition(t.payments, partition, high)], asynchronous=False)
        finally:
            c.close()
        code, out = _verify(pipe, monkeypatch, capsys)
        assert code == 1
        assert f"FAIL in no place: payment event 'lost-p1' (reference {ref!r}, " in out
        assert f"{t.payments}[{partition}]@{high - 1})" in out

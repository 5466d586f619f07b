"""Simulator → worker → sink → PostgreSQL equals the ground truth, also across kill -9s."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

from pipeline_support import wait_for_counts
from streams.engine.config import HOUR_MS, MatchConfig
from streams.pipeline import Pipeline, free_port, pipeline, wait_for_batches
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import Truth, truth_of
from streams.simulate.verify_pg import differences, expected_counts
from streams.worker.settings import WorkerSettings

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


def _wait_for_rows(pipe: Pipeline, truth: Truth, timeout: float) -> tuple[int, ...]:
    with pipe.pg() as conn:
        return wait_for_counts(conn, expected_counts(truth), timeout)


def test_postgres_rows_equal_ground_truth(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    sim = simulate(3000, seed=101, config=MATCH)
    truth = truth_of(sim)
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=3)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        pipe.sink()
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        assert _wait_for_rows(pipe, truth, 180) == expected_counts(truth)
        with pipe.pg() as conn:
            assert differences(truth, conn) == []
            # Amounts are integer minor units end to end.
            total = conn.execute("SELECT sum(payment_amount_minor) FROM recon_matches").fetchone()
        assert total == (sum(m["payment_amount_minor"] for m in truth.matches.values()),)


def test_kill_9_of_worker_and_sink_still_gives_exact_rows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    """At-least-once worker (repeats outputs after a crash) + exactly-once sink (dedupes): the
    tables still hold every outcome exactly once. The second worker restart is on an empty data
    directory, so its state comes from the changelog, torn batches excluded."""
    sim = simulate(5000, seed=202, config=MATCH)
    truth = truth_of(sim)
    # A dead worker's partitions move after the session timeout: 10 s instead of Faust's 60 s.
    base = WorkerSettings(
        kafka=kafka, match=MATCH, partitions=3, batch_max=200, session_timeout_ms=10_000
    )
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        worker = pipe.worker()
        sink = pipe.sink()
        producing = threading.Thread(
            target=produce,
            args=(sim, kafka, pipe.settings.topics, pipe.settings.partitions),
            kwargs={"rate": 2000.0},
        )
        producing.start()
        for round_ in range(4):
            if round_ % 2 == 0:
                # Mid-stream: the worker has committed batches and is in the middle of others.
                wait_for_batches(pipe.settings.web_port, 3, timeout=150)
                time.sleep(random.uniform(0, 0.5))
            else:
                time.sleep(1.0)
            victim = worker if round_ % 2 == 0 else sink
            assert victim.proc is not None
            victim.proc.kill()
            victim.proc.wait(10)
            if victim is worker:
                worker = pipe.worker("worker" if round_ == 0 else "worker-rebuilt")
            else:
                sink = pipe.sink()
        producing.join(120)
        assert _wait_for_rows(pipe, truth, 240) == expected_counts(truth)
        with pipe.pg() as conn:
            assert differences(truth, conn) == []


def test_rebalance_1_2_1_under_load_gives_exact_rows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    """Whole partition batches across rebalances: under load a second worker joins (1 -> 2)
    and leaves (2 -> 1), once by SIGTERM and once by kill -9. PostgreSQL equals the truth."""
    sim = simulate(20_000, seed=303, config=MATCH)
    truth = truth_of(sim)
    base = WorkerSettings(
        kafka=kafka, match=MATCH, partitions=3, batch_max=300, session_timeout_ms=10_000
    )
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        pipe.sink()
        producing = threading.Thread(
            target=produce,
            args=(sim, kafka, pipe.settings.topics, pipe.settings.partitions),
            kwargs={"rate": 800.0},  # 25 s of traffic,
        )
        producing.start()
        wait_for_batches(pipe.settings.web_port, 2, timeout=150)
        for how in ("sigterm", "kill-9"):
            port = free_port()
            second = pipe.worker(f"second-{how}", web_port=port)
            wait_for_batches(port, 2, timeout=150)  # it owns partitions and committed batches
            assert second.proc is not None
            if how == "sigterm":
                assert second.stop() == 0
            else:
                second.proc.kill()
                second.proc.wait(10)
            assert producing.is_alive(), "traffic ended before the rebalances: raise the rate"
        producing.join(120)
        assert _wait_for_rows(pipe, truth, 240) == expected_counts(truth)
        with pipe.pg() as conn:
            assert differences(truth, conn) == []

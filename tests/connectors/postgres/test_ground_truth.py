"""Simulator → worker → sink → PostgreSQL equals the ground truth."""

from __future__ import annotations

import uuid
from pathlib import Path

from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import Pipeline, pipeline
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import Truth, truth_of
from streams.simulate.verify_pg import differences, expected_counts
from streams.worker.settings import WorkerSettings
from tests.pipeline_support import wait_for_counts

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


# kill -9 of the worker and of the sink, rebalances, broker and database outages: the fault
# suite (tests/faults), against the same ground truth.

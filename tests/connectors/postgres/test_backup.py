"""The runbook's backup and restore (docs/operations.md), on the real database: a pg_dump of
the schema taken mid-run and restored after the run leaves the sink to store the rest again
from the offsets restored with the rows, exactly once."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.postgres.settings import sink_settings_from_env
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import env_for, pipeline
from streams.ops.verify_sources import input_ends, wait_caught_up
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import differences, expected_counts, row_counts
from streams.worker.settings import WorkerSettings
from tests.pipeline_support import wait_for_counts

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: it comes with PostgreSQL (.ci/postgres.sh)")
    return found


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_a_restored_backup_resumes_exactly_once(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    sim = simulate(2000, seed=909, config=MATCH)
    truth = truth_of(sim)
    cut = len(sim.records) // 2
    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=3)
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        sink = pipe.sink()
        t = pipe.settings.topics
        produce(replace(sim, records=sim.records[:cut]), kafka, t, 3, fmt="avro",
                flush_heartbeats=False)  # fmt: skip
        env = env_for(pipe.settings, tmp_path / "x", schema, database_url)
        sink_settings = sink_settings_from_env(env)
        wait_caught_up(pipe.settings, sink_settings, input_ends(pipe.settings), 120)

        dump = tmp_path / "recon.dump"
        _run([_tool("pg_dump"), "--format=custom", f"--schema={schema}", f"--file={dump}",
              database_url])  # fmt: skip
        with pipe.pg() as conn:
            at_backup = row_counts(conn)
        assert at_backup[0] > 0

        produce(replace(sim, records=sim.records[cut:]), kafka, t, 3, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
        assert sink.stop() is not None

        # pg_restore --clean cannot drop a partition's inherited primary key: the runbook drops
        # the schema, then restores it whole.
        with pipe.pg() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        _run([_tool("pg_restore"), "--exit-on-error", f"--dbname={database_url}", str(dump)])
        with pipe.pg() as conn:
            assert row_counts(conn) == at_backup  # the partitions came back with their rows
            pipe.sink("sink-after-restore")
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
            assert differences(truth, conn) == []

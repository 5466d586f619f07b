"""A sample of the fuzz corpus (every case of it) mixed with simulated traffic, through a real
worker and sink on the real broker and database: the worker never exits, every bad record is
dead-lettered with the reason the corpus built it for, and every valid record's outcome is the
ground truth."""

from __future__ import annotations

import uuid
from pathlib import Path

from streams.local_runner import pipeline
from streams.settings import KafkaSettings
from streams.worker.settings import WorkerSettings
from tests.fuzz.corpus import CASES, categories
from tests.fuzz.run import FUZZ_MATCH, run_fuzz

# More than the corpus has cases with bad records: every one of them is in the sample.
SAMPLE = 320
SEED = 29


def test_fuzz_sample_through_worker_and_sink(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    assert sum(1 for c in CASES if c.bad) <= SAMPLE
    base = WorkerSettings(kafka=kafka, match=FUZZ_MATCH, partitions=3)
    with pipeline(base, database_url, tmp_path, f"t_{uuid.uuid4().hex[:10]}") as pipe:
        report = run_fuzz(pipe, kafka, SAMPLE, SEED, valid=600, timeout=75)
    print(report)
    assert report["problems"] == []
    assert report["worker_exits"] == 0
    assert report["verify_findings"] == 0  # recon verify: every input in exactly one place
    assert report["lost"] == 0
    assert report["doubled"] == 0
    assert report["wrong_reason"] == 0
    assert report["by_reason"] == report["expected_by_reason"]
    assert report["dead_lettered"] == report["bad_sent"]
    assert report["refused"] > 0  # over the size limits: refused by the producer and the broker
    assert report["valid_sent"] > 600
    assert report["raw_header_records"] > 0  # header keys that are not UTF-8, or hold a NUL
    assert set(report["categories"]) == {c for c in categories() if c != "sum_overflow"}

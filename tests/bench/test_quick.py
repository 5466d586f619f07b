"""`make bench QUICK=1`, as `make test` runs it: the suite completes on the real broker and
database and writes every figure of issue 10 with a sane value. Never a speed: the machine is
shared and the figures are noisy; the targets are for the table, not for the tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]

# The keys issue 10 names for bench/results.json.
THROUGHPUTS = ("limit_passthrough_rps", "worker_rps", "inprocess_rps", "sink_rps", "restore_rps")
RATIOS = ("worker_over_limit", "sink_over_copy")
LATENCIES = ("latency_ms_p50", "latency_ms_p99")
MEMORY = ("rss_mb_1m_open", "rss_mb_10m_open")


def _number(results: dict[str, object], key: str) -> float:
    value = results[key]
    assert isinstance(value, int | float), f"{key} = {value!r}"
    assert math.isfinite(value), f"{key} = {value!r}"
    return float(value)


@pytest.mark.slow
def test_quick_suite_writes_every_figure(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": database_url,
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "suite.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    results = json.loads(out.read_text())
    assert "error" not in results

    assert int(_number(results, "records")) > 0
    for key in THROUGHPUTS:
        assert _number(results, key) > 0, key
    for key in RATIOS:
        assert 0 < _number(results, key) <= 10, key
    # Beyond allowed_lateness: a match cannot be released before the lateness has passed on
    # both inputs, so only clock granularity may take a sample below zero.
    p50, p99 = (_number(results, k) for k in LATENCIES)
    assert -50 < p50 <= p99
    for key in MEMORY:
        assert _number(results, key) > 0, key
    assert _number(results, "expire_1pct_of_1m_s") > 0
    assert _number(results, "rss_10m_open_groups") > _number(results, "rss_1m_open_groups") > 0
    assert [e["expired"] > 0 for e in results["expire_scaling"]] == [True] * 3

    # The quick run's own sanity: every expected match came out of the worker and in-process.
    assert results["worker_matches"] == results["expected_matches"]
    assert results["inprocess_truth_ok"] is True

    machine = results["machine"]
    assert machine["quick"] is True
    assert machine["cores"] > 0
    assert machine["ram_gb"] > 0
    assert machine["python"]
    assert machine["timestamp"]
    assert "| figure | value | target | met? |" in proc.stdout

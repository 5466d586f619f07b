"""A worker that cannot reach its broker says so in one line and exits 69 within its bound,
instead of a minute of librdkafka's reconnect lines and a bare timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson

from streams.local_runner import free_port


def test_an_unreachable_broker_is_one_clear_line_within_the_bound() -> None:
    port = free_port()  # nothing listens there
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "KAFKA_CONNECT_TIMEOUT": "3s",
        "RECON_LOG_FORMAT": "json",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 69, done.stderr[-2000:]
    assert took < 15
    lines = [orjson.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) <= 3, lines  # no librdkafka flood
    last = lines[-1]
    assert last["level"] == "CRITICAL"
    assert f"Kafka at 127.0.0.1:{port} did not answer within 3s" in str(last["message"])

"""The sink gives up at start-up as RECON_SINK_MAX_RETRIES says, whichever dependency does
not answer: an unreachable broker, an unreachable PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from streams.local_runner import free_port
from streams.settings import KafkaSettings


def _sink(env: dict[str, str]) -> tuple[int, bytes, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "sink"],
        env={**os.environ, "RECON_LOG_FORMAT": "json", **env},
        capture_output=True,
        timeout=90,
        check=False,
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.parametrize("retries", ["0", "3"])
def test_an_unreachable_broker_ends_the_sink_after_its_retries(
    retries: str, database_url: str
) -> None:
    port = free_port()
    code, err, took = _sink(
        {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "KAFKA_CONNECT_TIMEOUT": "2s",
            "DATABASE_URL": database_url,
            "RECON_SINK_MAX_RETRIES": retries,
            "RECON_SINK_RETRY_BACKOFF_MAX": "500ms",
        }
    )
    assert code == 3, err[-2000:]
    assert took < 2 * (int(retries) + 1) + 20
    assert f"giving up at start-up after {int(retries) + 1} attempts".encode() in err
    assert f"Kafka at 127.0.0.1:{port} did not answer".encode() in err


def test_an_unreachable_database_ends_the_sink_after_its_retries(kafka: KafkaSettings) -> None:
    port = free_port()
    code, err, took = _sink(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "DATABASE_URL": f"postgresql://recon@127.0.0.1:{port}/recon",
            "RECON_SINK_MAX_RETRIES": "2",
            "RECON_SINK_CONNECT_TIMEOUT": "2s",
            "RECON_SINK_RETRY_BACKOFF_MAX": "500ms",
        }
    )
    assert code == 3, err[-2000:]
    assert took < 30
    assert b"giving up at start-up after 3 attempts" in err
    assert b"PostgreSQL unavailable at start" in err

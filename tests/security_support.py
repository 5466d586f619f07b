"""Helpers of the security tests (tests/streams/test_security_on_kafka.py,
tests/connectors/postgres/test_tls.py): run a ``recon`` process, make a CA that signed nothing
the servers use, and read a process's JSON log lines. Imported by name, like pipeline_support."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.settings import KAFKA_SETTINGS

# Bounds of issue 13: a wrong setting is one clear line and an exit within this many seconds.
ERROR_WITHIN_S = 15.0
# A refused start-up may log this many lines at most: the refusal, and a line or two of context.
MAX_LINES = 3


def distinctive(label: str) -> str:
    """A password that cannot occur in a log by chance."""
    return f"Zq7-{label}-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def lines(self) -> list[dict[str, Any]]:
        """stderr's JSON log lines (RECON_LOG_FORMAT=json); a line that is not JSON fails."""
        return [orjson.loads(line) for line in self.stderr.splitlines() if line.strip()]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Kafka or database setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in KAFKA_SETTINGS and k != "DATABASE_URL"}
    env.update({"RECON_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_recon(args: Sequence[str], env: Mapping[str, str], timeout: float = 90) -> Ran:
    """``recon <args>`` in a child process, timed."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def untrusted_ca(directory: Path) -> Path:
    """A CA certificate made now by openssl: it signed neither the broker's nor the
    database's certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / "untrusted-ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=a CA nobody trusts",
            "-keyout",
            str(directory / "untrusted-ca.key"),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return cert


def assert_one_clear_line(ran: Ran, code: int, says: str, secrets: Sequence[str]) -> str:
    """``ran`` exited ``code`` within the bound, with few JSON log lines, one of which (an
    ERROR or CRITICAL on one line) says ``says``, and no secret anywhere. Returns that line."""
    assert ran.code == code, ran.output[-3000:]
    assert ran.seconds < ERROR_WITHIN_S, f"took {ran.seconds:.1f}s"
    lines = ran.lines()
    assert len(lines) <= MAX_LINES, lines  # no librdkafka flood, no traceback
    errors = [str(line["message"]) for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert len(errors) == 1, lines
    message = errors[0]
    assert says in message, message
    assert "\n" not in message
    assert "Traceback" not in ran.output
    for secret in secrets:
        assert secret not in ran.output
    return message

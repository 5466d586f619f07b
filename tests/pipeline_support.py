"""Helpers shared by the tests that run the whole pipeline (imported by name: tests/ is on the
path, like registry_stub)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

import psycopg
import pytest

from streams.simulate.verify_pg import row_counts


def wait_for_counts(
    conn: psycopg.Connection[Any], want: tuple[int, ...], timeout: float
) -> tuple[int, ...]:
    """Until the sink's tables hold ``want`` rows (matches, exceptions, resolved, dead
    letters); returns what they hold at the end. The tables appear once the sink migrated."""
    got: tuple[int, ...] = ()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and got != want:
        with contextlib.suppress(psycopg.Error):
            got = row_counts(conn)
        time.sleep(0.5)
    return got


def use_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Give this process a pipeline's settings, as the CLI reads them from the environment."""
    for name, value in env.items():
        if name.startswith(("RECON_", "KAFKA_", "DATABASE_")):
            monkeypatch.setenv(name, value)

"""Helpers shared by the tests that run the whole pipeline (imported by name: tests/ is on the
path, like registry_stub)."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import orjson
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


def http_get(port: int, path: str, timeout: float = 5, method: str = "GET") -> tuple[int, bytes]:
    """Status and body of ``method`` http://127.0.0.1:<port><path>; (0, b"") when nothing
    answers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except OSError:
        return 0, b""


def wait_for_status(
    port: int, path: str, status: int, timeout: float, alive: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Poll until ``path`` answers ``status``; returns its JSON body."""
    deadline = time.monotonic() + timeout
    got, body = http_get(port, path)
    while got != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} on {port}: {got} {body[:500]!r}, not {status}")
        if alive is not None:
            alive()
        time.sleep(0.2)
        got, body = http_get(port, path)
    parsed: dict[str, Any] = orjson.loads(body)
    return parsed

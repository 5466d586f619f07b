"""Generations from the operator's side: their settings, the live one, and running one.

A generation (streams/generation.py) is a full set of names under one environment;
connectors/postgres/generations.py records them and switches readers between them. Replay
and scale both build a new one here: register it, then run its worker and sink as children.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

from connectors.postgres import generations
from connectors.postgres.migrate import migrate
from connectors.postgres.settings import SinkSettings, sink_settings_from_env
from streams.local_runner import free_port
from streams.worker.settings import WorkerSettings, worker_from_env
from streams.worker.topics import create_topics


@dataclass(frozen=True, slots=True)
class Generation:
    number: int
    env: dict[str, str]
    worker: WorkerSettings
    sink: SinkSettings


def generation(env: Mapping[str, str], number: int) -> Generation:
    """The settings of generation ``number`` under this environment."""
    child = {**env, "RECON_GENERATION": str(number)}
    return Generation(number, child, worker_from_env(child), sink_settings_from_env(child))


def current(env: Mapping[str, str]) -> Generation:
    """The generation the operator commands work on: ``RECON_GENERATION`` when set, otherwise
    the live one, on the input layout it was built with (generation 0 without PostgreSQL)."""
    base = generation(env, 0)
    pinned = env.get("RECON_GENERATION", "").strip()
    n = int(pinned) if pinned else 0
    try:
        with connect(base.sink) as conn:
            if not pinned:
                n = generations.live(conn, base.sink.readers)
            shape = generations.layout(conn, base.sink.readers, n)
    except psycopg.OperationalError:
        return generation(env, n)
    if shape is None:
        return generation(env, n)
    return generation(
        {
            **env,
            "RECON_PARTITIONS": str(shape.partitions),
            "RECON_TOPIC_PAYMENTS": shape.payments_topic,
            "RECON_TOPIC_LEDGER": shape.ledger_topic,
        },
        n,
    )


def connect(sink: SinkSettings) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(sink.database_url, autocommit=True)


def prepare(new: Generation) -> None:
    """Topics, schema and registration of a new generation (idempotent: a replay resumes)."""
    create_topics(new.worker)
    t = new.worker.topics
    shape = generations.Layout(new.worker.partitions, t.payments, t.ledger)
    with connect(new.sink) as conn:
        generations.begin(conn, new.sink.readers, new.number, shape)
        migrate(conn, new.sink.schema)


@contextlib.contextmanager
def children(new: Generation, work: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """A worker and a sink of the new generation, stopped (SIGTERM) on exit."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**new.env, "RECON_WEB_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in (
            ("worker", ["worker", "--no-create-topics"]),
            ("sink", ["sink", "--log-level", "WARNING"]),
        ):
            log = (work / f"{name}.log").open("ab")
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", *argv],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()

"""The local process runner: the whole pipeline (topics, worker and sink processes) on this
machine, for ``recon demo``, the tests and the benchmarks.

Each run gets its own topic names, app id, consumer group and PostgreSQL schema, so runs never
see each other's data; what a run creates it removes, except the schema, which stays for
inspection until the next run with the same name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from confluent_kafka.admin import AdminClient

from streams.settings import KAFKA_SETTINGS, TopicNames
from streams.worker.settings import WorkerSettings
from streams.worker.topics import create_topics, faust_internal_topic_names, topic_names


def run_settings(base: WorkerSettings, run_id: str) -> WorkerSettings:
    prefix = f"{run_id}."
    topics = TopicNames(
        payments=prefix + "payments",
        ledger=prefix + "ledger",
        matched=prefix + "recon.matched",
        exceptions=prefix + "recon.exceptions",
        dlq=prefix + "recon.dlq",
    )
    return replace(base, app_id=f"recon-{run_id}", topics=topics)


def env_for(
    settings: WorkerSettings, data_dir: Path, schema: str, database_url: str
) -> dict[str, str]:
    t, m = settings.topics, settings.match
    # The run's Kafka settings whole (SASL and TLS too), none left over from this process.
    inherited = {k: v for k, v in os.environ.items() if k not in KAFKA_SETTINGS}
    return {
        **inherited,
        **settings.kafka.env(),
        "DATABASE_URL": database_url,
        "RECON_APP_ID": settings.app_id,
        "RECON_TOPIC_PAYMENTS": t.payments,
        "RECON_TOPIC_LEDGER": t.ledger,
        "RECON_TOPIC_MATCHED": t.matched,
        "RECON_TOPIC_EXCEPTIONS": t.exceptions,
        "RECON_TOPIC_DLQ": t.dlq,
        "RECON_PARTITIONS": str(settings.partitions),
        "RECON_DATA_DIR": str(data_dir),
        "RECON_WEB_PORT": str(settings.web_port),
        "RECON_SESSION_TIMEOUT": f"{settings.session_timeout_ms}ms",
        "RECON_MATCH_WINDOW": f"{m.match_window_ms}ms",
        "RECON_ALLOWED_LATENESS": f"{m.allowed_lateness_ms}ms",
        "RECON_RETENTION": f"{m.retention_ms}ms",
        "RECON_AMOUNT_TOLERANCE_MINOR": str(m.amount_tolerance_minor),
        "RECON_AMOUNT_TOLERANCE_BPS": str(m.amount_tolerance_bps),
        "RECON_BATCH_MAX": str(settings.batch_max),
        "RECON_BATCH_EVENTS": str(settings.batch_events),
        "RECON_BATCH_WITHIN": f"{settings.batch_within_ms}ms",
        "RECON_PG_SCHEMA": schema,
        "RECON_SINK_GROUP_ID": f"{settings.app_id}-sink",
        "PYTHONUNBUFFERED": "1",
    }


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1, for a worker's web server: the default 6066
    may belong to another worker on this machine, whose /metrics a bench must never read."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def worker_metric(port: int, name: str) -> float:
    """The sum of a worker's metric ``name`` over its labels, from its /metrics (0 when the
    worker does not answer yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[-1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
    )


def batches_done(port: int) -> float:
    """Batches a worker has committed so far."""
    return worker_metric(port, "recon_batch_seconds_count")


def wait_for_batches(port: int, at_least: float, timeout: float) -> float:
    """Wait until the worker on ``port`` has committed ``at_least`` batches; return how many."""
    deadline = time.monotonic() + timeout
    seen = batches_done(port)
    while seen < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker on port {port} committed {seen} batches, not {at_least}")
        time.sleep(0.05)
        seen = batches_done(port)
    return seen


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def wait_for_log(self, needle: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            if needle in self.log_path.read_bytes():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@dataclass
class Pipeline:
    settings: WorkerSettings
    schema: str
    database_url: str
    work_dir: Path
    processes: list[Process] = field(default_factory=list)

    def worker(
        self,
        name: str = "worker",
        web_port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> Process:
        """Start a worker and (``wait``) wait until it is ready; ``web_port``: for a second
        worker; ``extra_env``: settings on top of the pipeline's."""
        argv = [
            sys.executable,
            "-m",
            "streams.cli",
            "worker",
            "--no-create-topics",
            "--loglevel",
            "info",
        ]
        env = env_for(self.settings, self.work_dir / name, self.schema, self.database_url)
        if web_port is not None:
            env["RECON_WEB_PORT"] = str(web_port)
        env.update(extra_env or {})
        if extra_env and "RECON_LOG_LEVEL" in extra_env:
            argv[argv.index("--loglevel") + 1] = extra_env["RECON_LOG_LEVEL"]
        proc = Process(name, argv, env, self.work_dir / f"{name}.log").start()
        self.processes.append(proc)
        if wait:
            proc.wait_for_log(b"[^Worker]: Ready", timeout=120)
        return proc

    def sink(
        self,
        name: str = "sink",
        http_port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Process:
        """Start a sink; ``http_port``: serve /health, /ready and /metrics there."""
        env = env_for(self.settings, self.work_dir / name, self.schema, self.database_url)
        if http_port is not None:
            env["RECON_SINK_HTTP_PORT"] = str(http_port)
        env.update(extra_env or {})
        # --log-level would override RECON_LOG_LEVEL; WARNING unless the caller set one.
        level = env.get("RECON_LOG_LEVEL") if extra_env and "RECON_LOG_LEVEL" in extra_env else None
        argv = [sys.executable, "-m", "streams.cli", "sink", "--log-level", level or "WARNING"]
        proc = Process(name, argv, env, self.work_dir / f"{name}.log").start()
        self.processes.append(proc)
        return proc

    def pg(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            self.database_url, options=f"-csearch_path={self.schema}", autocommit=True
        )


@contextmanager
def pipeline(
    base: WorkerSettings, database_url: str, work_root: Path, schema: str, run_id: str | None = None
) -> Iterator[Pipeline]:
    run_id = run_id or f"run{uuid.uuid4().hex[:8]}"
    settings = run_settings(base, run_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    create_topics(settings)
    pipe = Pipeline(settings, schema, database_url, work_root / run_id)
    try:
        yield pipe
    finally:
        for proc in reversed(pipe.processes):
            proc.stop()
        names = topic_names(settings) + faust_internal_topic_names(settings)
        admin = AdminClient(settings.kafka.confluent_config())
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with suppress(Exception):
                future.result(timeout=30)

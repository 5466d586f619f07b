"""docker-compose.yml cannot drift from the code: the real worker and sink, started with exactly
the environment Compose gives them, reconcile a simulated run to its ground truth.

Compose's host names are mapped to the local broker and database. Beyond that the test changes
only what a container owns by itself: its data directory and ports, and the names of the
topics, schema, consumer group and app, made unique so the run never touches data of the
compose names on a shared broker. Nothing else of this process's environment is passed on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from confluent_kafka.admin import AdminClient

from streams.local_runner import free_port
from streams.settings import KafkaSettings, kafka_from_env, topics_from_env
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import expected_counts
from streams.worker.settings import worker_from_env
from streams.worker.topics import topic_names
from tests.deploy.compose_support import compose_env
from tests.pipeline_support import http_get, wait_for_counts, wait_for_status

RECON = Path(sys.executable).with_name("recon")
# What a process needs from the machine, not from its settings.
MACHINE = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def _environments(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> dict[str, dict[str, str]]:
    db = urlsplit(database_url)
    host_map = {"kafka:9092": kafka.bootstrap_servers, "postgres:5432": f"{db.hostname}:{db.port}"}
    run = uuid.uuid4().hex[:8]
    names = {
        "RECON_APP_ID": f"recon-c{run}",
        "RECON_PG_SCHEMA": f"c_{run}",
        "RECON_SINK_GROUP_ID": f"recon-sink-c{run}",
        "RECON_TOPIC_PAYMENTS": f"c{run}.payments",
        "RECON_TOPIC_LEDGER": f"c{run}.ledger",
        "RECON_TOPIC_MATCHED": f"c{run}.recon.matched",
        "RECON_TOPIC_EXCEPTIONS": f"c{run}.recon.exceptions",
        "RECON_TOPIC_DLQ": f"c{run}.recon.dlq",
    }
    machine = {k: os.environ[k] for k in MACHINE if k in os.environ}
    out: dict[str, dict[str, str]] = {}
    for service in ("topics", "migrate", "worker", "sink"):
        env = compose_env(service, host_map)
        owned: dict[str, str] = {}
        if service == "worker":
            owned = {"RECON_DATA_DIR": str(tmp_path / "worker"), "RECON_WEB_PORT": str(free_port())}
        if service == "sink":
            owned = {"RECON_SINK_HTTP_PORT": str(free_port())}
        # What the test replaces, compose sets (or leaves to the code's default, like topic names).
        assert set(owned) <= set(env), (service, set(owned) - set(env))
        if os.environ.get("DATABASE_URL"):  # an outside server: its own credentials
            owned |= {"PGUSER": db.username or "", "PGPASSWORD": db.password or ""}
            owned |= {"PGDATABASE": db.path.lstrip("/")}
        out[service] = {**machine, **env, **names, **owned}
    return out


@contextmanager
def _cleanup(envs: dict[str, dict[str, str]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        worker = worker_from_env(envs["worker"])
        admin = AdminClient(worker.kafka.confluent_config())
        for future in admin.delete_topics(topic_names(worker), operation_timeout=30).values():
            with suppress(Exception):
                future.result(timeout=30)
        sink = envs["sink"]
        with (
            suppress(psycopg.Error),
            psycopg.connect(sink["DATABASE_URL"], autocommit=True, **_libpq(sink)) as conn,
        ):
            conn.execute(f'DROP SCHEMA IF EXISTS "{sink["RECON_PG_SCHEMA"]}" CASCADE')


def _libpq(env: dict[str, str]) -> dict[str, str]:
    """The libpq settings compose passes as PG* variables, as connect() keywords."""
    keys = {"PGUSER": "user", "PGPASSWORD": "password", "PGDATABASE": "dbname"}
    return {word: env[name] for name, word in keys.items() if name in env}


def test_worker_and_sink_reconcile_on_the_compose_environment(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    envs = _environments(kafka, database_url, tmp_path)
    worker_env, sink_env = envs["worker"], envs["sink"]
    settings = worker_from_env(worker_env)
    assert settings.partitions == 6  # compose's RECON_PARTITIONS default
    with _cleanup(envs) as procs:
        for service, argv in (("topics", ["topics", "create"]), ("migrate", ["db", "migrate"])):
            done = subprocess.run(
                [str(RECON), *argv],
                env=envs[service],
                capture_output=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-3000:]
        logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("worker", "sink")}
        for name, env in (("worker", worker_env), ("sink", sink_env)):
            procs.append(
                subprocess.Popen(
                    [str(RECON), name], env=env, stdout=logs[name], stderr=subprocess.STDOUT
                )
            )

        def alive() -> None:
            for name, proc in zip(("worker", "sink"), procs, strict=True):
                log = (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]
                assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{log}"

        worker_port, sink_port = (
            int(worker_env["RECON_WEB_PORT"]),
            int(sink_env["RECON_SINK_HTTP_PORT"]),
        )
        wait_for_status(worker_port, "/ready", 200, 120, alive)
        wait_for_status(sink_port, "/ready", 200, 60, alive)

        sim = simulate(2000, seed=2024, config=settings.match)
        truth = truth_of(sim)
        produce(
            sim,
            kafka_from_env(worker_env),
            topics_from_env(worker_env),
            settings.partitions,
            fmt="avro",
        )
        with psycopg.connect(
            sink_env["DATABASE_URL"],
            autocommit=True,
            options=f"-csearch_path={sink_env['RECON_PG_SCHEMA']}",
            **_libpq(sink_env),
        ) as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
        alive()
        # The image's healthcheck paths answer on the ports compose gives.
        assert http_get(worker_port, "/health")[0] == 200
        assert http_get(sink_port, "/health")[0] == 200
        for proc in procs:
            proc.terminate()
        assert [proc.wait(60) for proc in procs] == [0, 0]

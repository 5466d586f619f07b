"""Shared fixtures: the real Kafka broker, per-test topics, and the real PostgreSQL server.

Under CI=true a missing broker or database fails the run; locally it skips the test with the
command that starts it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.settings import KafkaSettings, database_url_from_env, kafka_from_env
from tests.ci_support import ROOT, missing

INTEGRATION_FIXTURES = {
    "kafka",
    "kafka_admin",
    "new_topic",
    "database_url",
    "pg_schema",
    "kafka_sasl",
    "database_tls_url",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _unavailable(what: str, hint: str) -> None:
    missing(f"{what} is not reachable ({hint})", "start it with `make up`")


@pytest.fixture(scope="session")
def kafka() -> KafkaSettings:
    settings = kafka_from_env()
    try:
        metadata = AdminClient(settings.confluent_config()).list_topics(timeout=10)
    except Exception as exc:
        _unavailable(f"Kafka at {settings.bootstrap_servers}", str(exc))
    if not metadata.brokers:
        _unavailable(f"Kafka at {settings.bootstrap_servers}", "no brokers in metadata")
    return settings


@pytest.fixture(scope="session")
def kafka_admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(kafka.confluent_config())


def unique_name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def new_topic(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Creates uniquely named topics for one test and deletes them afterwards."""
    created: list[str] = []

    def create(
        prefix: str = "test", partitions: int = 3, config: dict[str, str] | None = None
    ) -> str:
        name = unique_name(f"t.{prefix}")
        spec = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        kafka_admin.create_topics([spec], operation_timeout=30)[name].result(timeout=30)
        created.append(name)
        return name

    yield create
    if created:
        for future in kafka_admin.delete_topics(created, operation_timeout=30).values():
            future.result(timeout=30)


@pytest.fixture(scope="session")
def database_url() -> str:
    url = database_url_from_env()
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", str(exc).strip())
    return url


@pytest.fixture
def pg_schema(database_url: str) -> Iterator[str]:
    """A fresh schema for one test; connect with ``options=-csearch_path=<schema>``."""
    schema = unique_name("t").replace(".", "_")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _set_up_output(script: str, command: str) -> str:
    """What ``.ci/<script> <command>`` prints (the local set-up's secured endpoints), or ''."""
    try:
        done = subprocess.run(
            [str(ROOT / ".ci" / script), command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def parse_env_lines(text: str) -> dict[str, str]:
    """``KEY=value`` lines (a client.env file) as a mapping."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}


@pytest.fixture(scope="session")
def kafka_sasl(kafka: KafkaSettings) -> KafkaSettings:
    """The cluster's SASL_SSL listener (SCRAM-SHA-512 over TLS): the KAFKA_* lines of the file
    RECON_KAFKA_SASL_ENV names (an existing cluster), else of `.ci/kafka.sh env-sasl` (the
    local broker's, made by `make up`)."""
    from streams.health import require_kafka

    given = os.environ.get("RECON_KAFKA_SASL_ENV")
    if given:
        with open(given, encoding="utf-8") as f:
            text = f.read()
    else:
        text = _set_up_output("kafka.sh", "env-sasl")
    env = parse_env_lines(text)
    if not env:
        source = given or ".ci/kafka.sh env-sasl"
        _unavailable("Kafka's SASL_SSL listener", f"no client settings from {source}")
    settings = kafka_from_env(env)
    try:
        require_kafka(settings, 15)
    except Exception as exc:
        _unavailable(f"Kafka's SASL_SSL listener at {settings.bootstrap_servers}", str(exc))
    return settings


@pytest.fixture(scope="session")
def database_tls_url(database_url: str) -> str:
    """A URL of a role that may log in only over TLS with its password, with
    sslmode=verify-full: RECON_DATABASE_TLS_URL (an existing server), else the local
    server's from `.ci/postgres.sh url-tls` (made by `make up`)."""
    url = os.environ.get("RECON_DATABASE_TLS_URL") or _set_up_output("postgres.sh", "url-tls")
    if not url:
        _unavailable("PostgreSQL over TLS", "no URL from .ci/postgres.sh url-tls")
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable("PostgreSQL over TLS", str(exc).strip())
    return url

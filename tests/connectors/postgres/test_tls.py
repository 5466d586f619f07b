"""PostgreSQL over TLS: the local server's TLS-only role (.ci/postgres.sh, made by `make up`)
logs in with its password over TLS only; `sslmode=verify-full` in DATABASE_URL works for the
sink's migrations and the commands; a wrong password or an untrusted root certificate is one
clear line and exit 78 within 15 s for the sink and for a command, with no secret shown.

The whole pipeline on PostgreSQL over TLS (and Kafka over SASL_SSL) is
tests/streams/test_security_on_kafka.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

from streams.exceptions import EXIT_CONFIG
from streams.settings import KafkaSettings
from tests.security_support import (
    assert_one_clear_line,
    clean_env,
    distinctive,
    run_recon,
    untrusted_ca,
)


def _with(url: str, password: str | None = None, **query: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        user = parts.username or ""
        netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    params = dict(parse_qsl(parts.query))
    params.update(query)
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(params, safe="/")))


def test_the_tls_role_logs_in_only_over_tls(database_tls_url: str, database_url: str) -> None:
    with psycopg.connect(database_tls_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl, version = row.fetchone() or (False, None)
    assert ssl is True
    assert str(version).startswith("TLS")
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(_with(database_tls_url, sslmode="disable"), connect_timeout=5)
    # The trusted local role of every other test still connects as before.
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_migrations_and_commands_work_over_verify_full(database_tls_url: str) -> None:
    assert "sslmode=verify-full" in database_tls_url
    schema = f"t_{uuid.uuid4().hex[:10]}"
    env = clean_env(DATABASE_URL=database_tls_url, RECON_PG_SCHEMA=schema)
    try:
        for args in (["db", "migrate"], ["db", "status"], ["report"]):
            ran = run_recon(args, env)
            assert ran.code == 0, (args, ran.output[-3000:])
            assert (urlsplit(database_tls_url).password or "") not in ran.output
    finally:
        with psycopg.connect(database_tls_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrusted_ca(tmp_path_factory.mktemp("ca"))


@pytest.mark.parametrize("process", ["sink", "report"])
@pytest.mark.parametrize("fault", ["wrong-password", "untrusted-certificate"])
def test_a_refused_database_is_one_clear_line_and_exit_78(
    process: str,
    fault: str,
    kafka: KafkaSettings,
    database_tls_url: str,
    other_ca: Path,
) -> None:
    right = urlsplit(database_tls_url).password or ""
    wrong = distinctive("wrong")
    if fault == "wrong-password":
        url = _with(database_tls_url, password=wrong)
        says = "refused the credentials"
    else:
        url = _with(database_tls_url, sslrootcert=str(other_ca))
        says = "presented a certificate that is not trusted"
    env = clean_env(
        **kafka.env(),
        DATABASE_URL=url,
        RECON_PG_SCHEMA=f"t_{uuid.uuid4().hex[:10]}",
        RECON_SINK_HTTP_PORT="0",
    )
    ran = run_recon([process], env, timeout=60)
    message = assert_one_clear_line(ran, EXIT_CONFIG, says, [wrong, right])
    assert "PostgreSQL at 127.0.0.1:" in message
    print(f"{process} {fault}: exit {ran.code} after {ran.seconds:.2f}s: {message}")

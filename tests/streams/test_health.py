"""How a refused connection is told: librdkafka's and libpq's refusals as one line naming
where and why, never a password; what a retry may fix is not a refusal."""

from __future__ import annotations

import psycopg
import pytest
from confluent_kafka import KafkaError

from streams.exceptions import RefusedError, UnreachableError
from streams.health import database_refusal, database_where, dependency_error, kafka_refusal
from streams.settings import KafkaSettings

KAFKA = KafkaSettings(
    bootstrap_servers="k1:9094",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="recon",
    sasl_password="Zq7-secret-0002",
    ssl_cafile="/etc/ca.pem",
)
URL = (
    "postgresql://recon_tls:Zq7-secret-0003@db.example:5433/recon"
    "?sslmode=verify-full&sslrootcert=/etc/pg-ca.pem"
)


def test_kafka_refusals_name_the_cluster_the_user_and_the_ca() -> None:
    auth = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error:\n invalid")
    said = kafka_refusal(KAFKA, auth)
    assert said == (
        "Kafka at k1:9094 (SASL_SSL) refused the credentials of user 'recon' with"
        " SCRAM-SHA-512: SASL authentication error: invalid"
    )
    tls = KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed")
    assert "its certificate is not trusted by KAFKA_SSL_CAFILE=/etc/ca.pem" in str(
        kafka_refusal(KAFKA, tls)
    )
    down = KafkaError(KafkaError._TRANSPORT, "Connection refused")
    assert kafka_refusal(KAFKA, down) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('FATAL:  password authentication failed for user "recon_tls"', "refused the credentials"),
        ("SSL error: certificate verify failed", "presented a certificate that is not trusted"),
        ('server certificate for "x" does not match host name "db"', "another host name"),
        ("pg_hba.conf rejects connection for host", "refused the connection (pg_hba.conf)"),
    ],
)
def test_database_refusals_are_one_line_without_the_password(text: str, says: str) -> None:
    said = database_refusal(psycopg.OperationalError(f"connection failed:\n{text}"), URL)
    assert said is not None
    assert said.startswith(
        "PostgreSQL at db.example:5433 (user recon_tls, sslmode=verify-full,"
        " sslrootcert=/etc/pg-ca.pem) "
    )
    assert says in said
    assert "\n" not in said
    assert "Zq7-secret-0003" not in said


def test_an_unreachable_database_is_not_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    down = psycopg.OperationalError("connection refused")
    assert database_refusal(down, URL) is None
    monkeypatch.setenv("DATABASE_URL", URL)
    try:
        raise RuntimeError("report failed") from down
    except RuntimeError as exc:
        found = dependency_error(exc)
    assert isinstance(found, UnreachableError)
    assert "Zq7-secret-0003" not in str(found)
    wrong = psycopg.OperationalError("FATAL: password authentication failed for user")
    assert isinstance(dependency_error(wrong), RefusedError)
    assert dependency_error(ValueError("not ours")) is None
    assert database_where("not a url at all ===") == "PostgreSQL"

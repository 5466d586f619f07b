"""The Kafka connection settings: what a child process reads back, the local defaults that
follow the set-up's ports, and the settings refused before any client exists."""

from __future__ import annotations

import pytest

from streams.exceptions import ConfigError
from streams.settings import (
    KafkaSettings,
    database_url_from_env,
    kafka_from_env,
)

SASL = {
    "KAFKA_BOOTSTRAP_SERVERS": "k1:9094,k2:9094",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "recon",
    "KAFKA_SASL_PASSWORD": "Zq7-secret-0001",
    "KAFKA_SSL_CAFILE": __file__,  # any readable file
    "KAFKA_CONNECT_TIMEOUT": "3s",
}


def test_settings_round_trip_through_the_environment() -> None:
    settings = kafka_from_env(SASL)
    assert settings.env() == {**SASL, "KAFKA_CONNECT_TIMEOUT": "3000ms"}
    assert kafka_from_env(settings.env()) == settings
    settings.check()
    conf = settings.confluent_config()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["ssl.ca.location"] == __file__
    assert "Zq7-secret-0001" not in repr(settings)


def test_the_local_defaults_follow_the_set_up_ports() -> None:
    env = {"RECON_KAFKA_PORT": "29092", "RECON_PG_PORT": "56432"}
    assert kafka_from_env(env).bootstrap_servers == "127.0.0.1:29092"
    assert database_url_from_env(env) == "postgresql://recon:recon@127.0.0.1:56432/recon"
    assert kafka_from_env({}).bootstrap_servers == "127.0.0.1:19092"
    given = {**env, "KAFKA_BOOTSTRAP_SERVERS": "k:9092", "DATABASE_URL": "postgresql://db/x"}
    assert kafka_from_env(given).bootstrap_servers == "k:9092"
    assert database_url_from_env(given) == "postgresql://db/x"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of"),
        ({"KAFKA_SASL_MECHANISM": ""}, "needs KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "needs KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SASL_USERNAME": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SASL_PASSWORD": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SSL_CAFILE": "/no/such/ca.pem"}, "KAFKA_SSL_CAFILE cannot be read"),
    ],
)
def test_settings_that_cannot_work_are_refused(change: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        kafka_from_env({**SASL, **change}).check()
    assert "Zq7-secret-0001" not in str(caught.value)


def test_plaintext_needs_nothing_more() -> None:
    KafkaSettings().check()

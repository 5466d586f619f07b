"""The local services' defaults follow RECON_KAFKA_PORT and RECON_PG_PORT, as .ci/kafka.sh and
.ci/postgres.sh do, so a second checkout's tests reach its own broker and database."""

from __future__ import annotations

from streams.settings import database_url_from_env, kafka_from_env


def test_defaults_are_the_local_services() -> None:
    assert kafka_from_env({}).bootstrap_servers == "127.0.0.1:19092"
    assert database_url_from_env({}) == "postgresql://recon:recon@127.0.0.1:55432/recon"


def test_port_variables_move_the_local_services() -> None:
    env = {"RECON_KAFKA_PORT": "39092", "RECON_PG_PORT": "57432"}
    assert kafka_from_env(env).bootstrap_servers == "127.0.0.1:39092"
    assert database_url_from_env(env) == "postgresql://recon:recon@127.0.0.1:57432/recon"


def test_explicit_settings_win_over_the_port_variables() -> None:
    env = {
        "RECON_KAFKA_PORT": "39092",
        "RECON_PG_PORT": "57432",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "DATABASE_URL": "postgresql://db/recon",
    }
    assert kafka_from_env(env).bootstrap_servers == "kafka:9092"
    assert database_url_from_env(env) == "postgresql://db/recon"

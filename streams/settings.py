"""Settings: one typed, frozen object read from the environment, defaults documented in README.

Durations accept ``500ms``, ``30s``, ``5m``, ``48h``, ``30d`` or a bare integer of milliseconds.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.exceptions import ConfigError

LOCAL_KAFKA = "127.0.0.1:19092"
LOCAL_DATABASE_URL = "postgresql://recon:recon@127.0.0.1:55432/recon"

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 500ms, 30s, 5m, 48h, 30d)")
    return int(match.group(1)) * _UNIT_MS[match.group(2) or "ms"]


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Connection settings, passed through to both clients (confluent-kafka and aiokafka)."""

    bootstrap_servers: str = LOCAL_KAFKA
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    # How long a process waits at start-up for the cluster to answer before it exits with
    # one clear line (streams.health.require_kafka).
    connect_timeout_ms: int = 10_000

    def confluent_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            # librdkafka's lines through Python's logging: JSON like ours, secrets masked.
            "logger": LIBRDKAFKA_LOG,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password or ""
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        return conf


LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


@dataclass(frozen=True, slots=True)
class TopicNames:
    payments: str = "payments"
    ledger: str = "ledger"
    matched: str = "recon.matched"
    exceptions: str = "recon.exceptions"
    dlq: str = "recon.dlq"


def get_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def get_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def get_duration(env: Mapping[str, str], name: str, default_ms: int) -> int:
    raw = env.get(name, "").strip()
    return parse_duration_ms(raw) if raw else default_ms


def get_retention(env: Mapping[str, str], name: str, default_ms: int) -> int:
    """A topic retention: a duration, or ``forever`` / ``-1`` for Kafka's unlimited -1."""
    raw = env.get(name, "").strip().lower()
    if raw in ("forever", "-1"):
        return -1
    return parse_duration_ms(raw) if raw else default_ms


def local_kafka(env: Mapping[str, str] | None = None) -> str:
    """The local broker of ``make up`` (.ci/kafka.sh): ``LOCAL_KAFKA``, or on the port
    ``RECON_KAFKA_PORT`` when a checkout runs its own broker there."""
    env = os.environ if env is None else env
    port = env.get("RECON_KAFKA_PORT", "").strip()
    return f"127.0.0.1:{port}" if port else LOCAL_KAFKA


def local_database_url(env: Mapping[str, str] | None = None) -> str:
    """The local PostgreSQL of ``make up`` (.ci/postgres.sh): ``LOCAL_DATABASE_URL``, or on the
    port ``RECON_PG_PORT`` when a checkout runs its own server there."""
    env = os.environ if env is None else env
    port = env.get("RECON_PG_PORT", "").strip()
    return f"postgresql://recon:recon@127.0.0.1:{port}/recon" if port else LOCAL_DATABASE_URL


def kafka_from_env(env: Mapping[str, str] | None = None) -> KafkaSettings:
    env = os.environ if env is None else env
    return KafkaSettings(
        bootstrap_servers=get_str(env, "KAFKA_BOOTSTRAP_SERVERS", local_kafka(env)),
        security_protocol=get_str(env, "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or None,
        sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
        sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
        ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
        connect_timeout_ms=get_duration(env, "KAFKA_CONNECT_TIMEOUT", 10_000),
    )


def topics_from_env(env: Mapping[str, str] | None = None) -> TopicNames:
    env = os.environ if env is None else env
    d = TopicNames()
    return TopicNames(
        payments=get_str(env, "RECON_TOPIC_PAYMENTS", d.payments),
        ledger=get_str(env, "RECON_TOPIC_LEDGER", d.ledger),
        matched=get_str(env, "RECON_TOPIC_MATCHED", d.matched),
        exceptions=get_str(env, "RECON_TOPIC_EXCEPTIONS", d.exceptions),
        dlq=get_str(env, "RECON_TOPIC_DLQ", d.dlq),
    )


def database_url_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return get_str(env, "DATABASE_URL", local_database_url(env))

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
# The local set-up's ports (.ci/kafka.sh, .ci/postgres.sh); the local defaults follow them, so a
# second checkout on other ports needs no KAFKA_BOOTSTRAP_SERVERS or DATABASE_URL.
LOCAL_KAFKA_PORT_SETTING = "RECON_KAFKA_PORT"
LOCAL_PG_PORT_SETTING = "RECON_PG_PORT"


def local_kafka(env: Mapping[str, str] | None = None) -> str:
    """The local broker's PLAINTEXT address: ``RECON_KAFKA_PORT`` or 19092."""
    env = os.environ if env is None else env
    port = get_int(env, LOCAL_KAFKA_PORT_SETTING, 19092)
    return f"127.0.0.1:{port}"


def local_database_url(env: Mapping[str, str] | None = None) -> str:
    """The local server's URL: ``RECON_PG_PORT`` or 55432."""
    env = os.environ if env is None else env
    port = get_int(env, LOCAL_PG_PORT_SETTING, 55432)
    return f"postgresql://recon:recon@127.0.0.1:{port}/recon"


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

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the setting when these settings cannot work: an
        unknown protocol, SASL without a supported mechanism or a user, a CA file that cannot
        be read. Every process checks them at start-up (streams.health.require_kafka)."""
        protocol = self.security_protocol.upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)},"
                f" got {self.security_protocol!r}"
            )
        if protocol.startswith("SASL_"):
            if (self.sasl_mechanism or "").upper() not in SASL_MECHANISMS:
                raise ConfigError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM, one of"
                    f" {', '.join(SASL_MECHANISMS)}; got {self.sasl_mechanism!r}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise ConfigError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and"
                    " KAFKA_SASL_PASSWORD"
                )
        if self.ssl_cafile and not os.access(self.ssl_cafile, os.R_OK):
            raise ConfigError(f"KAFKA_SSL_CAFILE cannot be read: {self.ssl_cafile}")

    def env(self) -> dict[str, str]:
        """These settings as the environment a child process reads them from
        (:func:`kafka_from_env`); the unset ones are absent."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "KAFKA_CONNECT_TIMEOUT": f"{self.connect_timeout_ms}ms",
        }
        optional = {
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.sasl_username,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
            "KAFKA_SSL_CAFILE": self.ssl_cafile,
        }
        env.update({name: value for name, value in optional.items() if value is not None})
        return env


# Every variable :func:`kafka_from_env` reads.
KAFKA_SETTINGS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_CONNECT_TIMEOUT",
)


LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms both clients (librdkafka and aiokafka) take from a user name and a password.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


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

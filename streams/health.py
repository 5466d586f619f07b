"""Liveness and readiness of a process: named checks, their probes, and the JSON they serve.

Each process (worker, sink) keeps one :class:`Health` with a check per dependency. Probes run
in a daemon thread and only record what they saw, so ``/ready`` answers at once from the last
probe, and a slow dependency never blocks the HTTP handler. Details are short, fixed phrases
or an exception's class and first line: never a connection string.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from streams.exceptions import ConfigError, ReconError, RefusedError, UnreachableError
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str
    since: float  # wall time of the last change of ``ok``


class Health:
    """The latest state of each named check. ``ready_gauge``: a Prometheus gauge labelled by
    ``check``, set to 1 / 0 as checks change."""

    def __init__(self, names: Iterable[str], ready_gauge: Any | None = None) -> None:
        now = time.time()
        self._lock = threading.Lock()
        self._checks = {name: Check(False, "not checked yet", now) for name in names}
        self._gauge = ready_gauge
        self.alive: Callable[[], bool] = lambda: True
        for name in self._checks:
            self._set_gauge(name, False)

    def _set_gauge(self, name: str, ok: bool) -> None:
        if self._gauge is not None:
            self._gauge.labels(name).set(1 if ok else 0)

    def set(self, name: str, ok: bool, detail: str) -> None:
        with self._lock:
            old = self._checks[name]
            if old.ok != ok:
                (log.info if ok else log.warning)(
                    "%s %s: %s", name, "ready" if ok else "not ready", detail
                )
            self._checks[name] = Check(ok, detail, old.since if old.ok == ok else time.time())
        self._set_gauge(name, ok)

    def ready(self) -> bool:
        with self._lock:
            return all(c.ok for c in self._checks.values())

    def body(self, status: str) -> bytes:
        with self._lock:
            checks = {
                name: {"ok": c.ok, "detail": c.detail, "since": round(c.since, 3)}
                for name, c in sorted(self._checks.items())
            }
        return orjson.dumps({"status": status, "checks": checks})

    def readiness(self) -> tuple[int, bytes]:
        """``/ready``: 200 when every check is ok, else 503."""
        ok = self.ready()
        return (200 if ok else 503), self.body("ready" if ok else "not ready")

    def liveness(self) -> tuple[int, bytes]:
        """``/health``: 200 while the process works, whatever its dependencies say (a restart
        does not bring a broker back); 503 when the process itself is stuck."""
        alive = self.alive()
        return (200 if alive else 503), self.body("alive" if alive else "stuck")


def describe_error(exc: BaseException) -> str:
    """An exception as ``Class: first line``, short: a detail for a health body."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class Prober:
    """Runs each probe every ``interval`` seconds in one daemon thread; a probe returns a
    detail when ok and raises when not."""

    def __init__(self, health: Health, interval: float = PROBE_INTERVAL_S) -> None:
        self.health = health
        self.interval = interval
        self.probes: dict[str, Callable[[], str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, probe: Callable[[], str]) -> None:
        self.probes[name] = probe

    def run_once(self) -> None:
        for name, probe in self.probes.items():
            try:
                detail = probe()
            except Exception as exc:  # a probe's failure is the check's state, not ours
                self.health.set(name, False, describe_error(exc))
            else:
                self.health.set(name, True, detail)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.run_once()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="health-probes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


# librdkafka errors that no retry can fix: the cluster refused the credentials, or the TLS
# handshake failed (an untrusted or mismatched certificate, TLS against a plain port). They come
# through error_cb within the first connection attempt, long before a metadata timeout.
_AUTH_CODES = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED")
_TLS_CODES = ("_SSL",)
_POLL_S = 0.25


def one_line(text: str, limit: int = 400) -> str:
    """``text`` on one line (whitespace runs folded), at most ``limit`` characters."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


def kafka_refusal(kafka: KafkaSettings, err: Any) -> str | None:
    """One line saying why the cluster cannot be used with these settings, when the librdkafka
    error ``err`` (a ``KafkaError``) is a refusal; None for anything a retry may fix."""
    from confluent_kafka import KafkaError

    code = err.code()
    reason = one_line(err.str())
    where = f"Kafka at {kafka.bootstrap_servers} ({kafka.security_protocol})"
    if code in {getattr(KafkaError, name) for name in _AUTH_CODES}:
        who = f"user {kafka.sasl_username!r}" if kafka.sasl_username else "this client"
        mechanism = f" with {kafka.sasl_mechanism}" if kafka.sasl_mechanism else ""
        return f"{where} refused the credentials of {who}{mechanism}: {reason}"
    if code in {getattr(KafkaError, name) for name in _TLS_CODES}:
        trust = f"KAFKA_SSL_CAFILE={kafka.ssl_cafile}" if kafka.ssl_cafile else "the system CAs"
        if "certificate verify failed" in reason or "could not be verified" in reason:
            return f"{where}: its certificate is not trusted by {trust}: {reason}"
        return f"{where}: the TLS handshake failed: {reason}"
    return None


def require_kafka(kafka: KafkaSettings, timeout_s: float) -> int:
    """Wait up to ``timeout_s`` for the cluster to answer a metadata request; returns its
    broker count. Raises :class:`ConfigError` when the settings cannot work,
    :class:`RefusedError` as soon as the cluster refuses the credentials
    or its certificate is not trusted, and :class:`UnreachableError` when it does not answer
    in time: each with one clear line, instead of a minute of librdkafka's reconnect lines and
    a bare timeout later on."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    kafka.check()
    conf = kafka.confluent_config()
    quiet = logging.getLogger("librdkafka.startup")
    quiet.setLevel(logging.CRITICAL)  # the reconnect lines: the error below says it once
    errors: list[Any] = []
    conf.update({"client.id": "recon-startup", "logger": quiet, "error_cb": errors.append})
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:  # librdkafka refused the settings themselves
        raise ConfigError(f"Kafka client settings: {one_line(str(exc.args[0]))}") from None
    deadline = time.monotonic() + timeout_s
    last: Any = None
    wait = _POLL_S
    while True:
        # Short requests first, so a refusal reported meanwhile is seen within a fraction of a
        # second; then longer ones, so a slow cluster's answer is not given up on each time.
        try:
            meta = admin.list_topics(timeout=max(0.01, min(wait, deadline - time.monotonic())))
        except KafkaException as exc:
            last = exc.args[0] if exc.args else exc
        else:
            if meta.brokers:
                return len(meta.brokers)
        admin.poll(0)  # serves error_cb
        for err in errors:
            refusal = kafka_refusal(kafka, err)
            if refusal is not None:
                raise RefusedError(refusal)
        if time.monotonic() >= deadline:
            break
        wait = min(wait * 2, 2.0)
    # The most telling error: librdkafka's own (e.g. connection refused) over the timeout.
    seen = [e for e in errors if e.code() != getattr(type(e), "_ALL_BROKERS_DOWN", None)]
    err = seen[-1] if seen else last
    reason = one_line(err.str() if hasattr(err, "str") else str(err)) if err else "no answer"
    raise UnreachableError(
        f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout_s:g}s "
        f"({kafka.security_protocol}): {reason}"
    )


# What PostgreSQL (or libpq) says when a setting is wrong: no retry can help.
_PG_REFUSALS = (
    ("password authentication failed", "refused the credentials"),
    ("authentication failed for user", "refused the credentials"),
    ("no password supplied", "asked for a password, and DATABASE_URL has none"),
    ("pg_hba.conf rejects connection", "refused the connection (pg_hba.conf)"),
    ("no pg_hba.conf entry", "refused the connection (pg_hba.conf)"),
    ("certificate verify failed", "presented a certificate that is not trusted (sslrootcert)"),
    ("does not match host name", "presented a certificate for another host name"),
    (
        "root certificate file",
        "cannot be verified: the root certificate (sslrootcert) is unreadable",
    ),
    ("server does not support SSL", "offers no TLS, but sslmode requires it"),
    ("SSL is not enabled on the server", "offers no TLS, but sslmode requires it"),
)


def database_where(url: str) -> str:
    """``PostgreSQL at host:port (user, sslmode)``: a URL without its password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "PostgreSQL"
    parts = [f"user {info['user']}"] if info.get("user") else []
    if info.get("sslmode"):
        parts.append(f"sslmode={info['sslmode']}")
    if info.get("sslrootcert"):
        parts.append(f"sslrootcert={info['sslrootcert']}")
    where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
    return f"PostgreSQL at {where}" + (f" ({', '.join(str(p) for p in parts)})" if parts else "")


def database_refusal(exc: BaseException, url: str) -> str | None:
    """One line saying why PostgreSQL cannot be used with ``url`` when ``exc`` (raised while
    connecting) says a setting is wrong; None for anything a retry may fix."""
    text = one_line(str(exc))
    for needle, what in _PG_REFUSALS:
        if needle in text:
            return f"{database_where(url)} {what}: {text}"
    return None


def dependency_error(exc: BaseException) -> ReconError | None:
    """A command's failure to reach Kafka or PostgreSQL as one of ours, with one line:
    :class:`RefusedError` when a setting is wrong, :class:`UnreachableError` when the
    dependency did not answer; None for any other failure."""
    from streams.settings import database_url_from_env

    for cause in _chain(exc):
        if type(cause).__module__.startswith("psycopg") and type(cause).__name__ in (
            "OperationalError",
            "ConnectionTimeout",
        ):
            url = database_url_from_env()
            refusal = database_refusal(cause, url)
            if refusal is not None:
                return RefusedError(refusal)
            return UnreachableError(f"{database_where(url)} unavailable: {one_line(str(cause))}")
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def kafka_probe(kafka: KafkaSettings, timeout: float = PROBE_TIMEOUT_S) -> Callable[[], str]:
    """A metadata request to the cluster, on one admin client kept for the process."""
    from confluent_kafka.admin import AdminClient

    conf = kafka.confluent_config()
    conf.update({"client.id": "recon-health", "log.connection.close": False})
    admin = AdminClient(conf)

    def probe() -> str:
        meta = admin.list_topics(timeout=timeout)
        brokers = len(meta.brokers)
        if brokers == 0:
            raise ConnectionError("no broker in the cluster's metadata")
        return f"{brokers} broker{'s' if brokers != 1 else ''}"

    return probe

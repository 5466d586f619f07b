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

from streams.exceptions import UnreachableError
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


def require_kafka(kafka: KafkaSettings, timeout_s: float) -> int:
    """Wait up to ``timeout_s`` for the cluster to answer a metadata request; returns its
    broker count. Raises :class:`UnreachableError` with one clear line otherwise, instead of
    a minute of librdkafka's reconnect lines and a bare timeout later on."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    conf = kafka.confluent_config()
    quiet = logging.getLogger("librdkafka.startup")
    quiet.setLevel(logging.CRITICAL)  # the reconnect lines: the error below says it once
    conf.update({"client.id": "recon-startup", "logger": quiet})
    admin = AdminClient(conf)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        reason = err.str() if hasattr(err, "str") else str(err)
        raise UnreachableError(
            f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout_s:g}s "
            f"({kafka.security_protocol}): {reason}"
        ) from None
    return len(meta.brokers)


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

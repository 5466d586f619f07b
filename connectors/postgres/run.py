"""``recon sink``: consume recon.matched, recon.exceptions and recon.dlq into PostgreSQL.

Also runnable as ``python -m connectors.postgres``. Settings come from the environment (see
:mod:`connectors.postgres.settings`); the few flags override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from typing import Any

from connectors.postgres.settings import SinkSettings
from streams.backoff import backoff_s
from streams.exceptions import EXIT_CONFIG

log = logging.getLogger("connectors.postgres")

# A replay retired this sink's generation (connectors/postgres/generations.py): a restart
# cannot help, so an orchestrator should not restart it in a loop.
EXIT_RETIRED = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schema", help="PostgreSQL schema (default: $RECON_PG_SCHEMA or public)")
    parser.add_argument("--group-id", help="consumer group (default: $RECON_SINK_GROUP_ID)")
    parser.add_argument("--batch-size", type=int, help="records per batch (default 5000)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /health, /ready and /metrics on this port (default: $RECON_SINK_HTTP_PORT)",
    )
    parser.add_argument("--log-level", help="logging level (default: $RECON_LOG_LEVEL or INFO)")


def consumer_config(settings: SinkSettings) -> dict[str, Any]:
    conf: dict[str, Any] = settings.kafka.confluent_config()
    conf.update(
        {
            "group.id": settings.group_id,
            "client.id": "recon-sink",
            # The store owns the offsets; Kafka's are written after each commit, for lag monitoring.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": settings.session_timeout_ms,
            # Eager assignment: on_assign gets the whole assignment and calls assign() with offsets.
            "partition.assignment.strategy": "range",
            # Bound the prefetch queue: under backpressure memory is the batch plus this.
            "queued.max.messages.kbytes": 16384,
        }
    )
    if settings.instance_id:
        conf["group.instance.id"] = settings.instance_id
    return conf


# EXIT_CONFIG (78): a setting is wrong; Kafka or PostgreSQL refused the credentials, or its
# certificate is not trusted. A restart cannot help, so the sink exits at once.


def _refusal(settings: SinkSettings, exc: BaseException) -> str | None:
    """One line when ``exc`` says a setting is wrong (see streams.health); else None."""
    from streams.exceptions import RefusedError
    from streams.health import database_refusal

    if isinstance(exc, RefusedError):
        return str(exc)
    return database_refusal(exc.__cause__ or exc, settings.database_url)


# A loop turn takes at most a poll, or a batch write; one that has not turned for this long
# is stuck, and /health says so (a liveness probe then restarts the process).
STUCK_AFTER_S = 300.0


def start_health(settings: SinkSettings) -> Any:
    """Readiness checks (Kafka, PostgreSQL, migrations), their probe thread, and the HTTP
    server when a port is set. Returns the :class:`~streams.health.Health`."""
    from connectors import metrics
    from connectors.http import serve
    from connectors.postgres.health import DatabaseProbe
    from streams.health import Health, Prober, kafka_probe

    health = Health(("kafka", "postgres", "migrations"), metrics.READY)
    prober = Prober(health)
    prober.add("kafka", kafka_probe(settings.kafka))
    database = DatabaseProbe(settings)
    prober.add("postgres", database.postgres)
    prober.add("migrations", database.migrations)
    prober.start()
    if settings.metrics_port:
        server = serve(health, settings.http_host, settings.metrics_port)
        log.info("serving /health, /ready and /metrics on port %d", server.server_address[1])
    return health


def run_sink(
    settings: SinkSettings,
    stop: threading.Event,
    consumer: Any | None = None,
    health: Any | None = None,
) -> int:
    """Run the sink until ``stop`` is set. Returns the process exit code.

    ``consumer``: a consumer made from :func:`consumer_config` (the bench wraps one to time
    the first record read); by default one is made here. ``health``: the process's
    :class:`~streams.health.Health`, whose liveness follows the loop."""
    import time

    from confluent_kafka import Consumer

    from connectors.exceptions import SinkUnavailableError
    from connectors.loop import EXIT_RETRIES_EXHAUSTED, LoopSettings, SinkLoop
    from connectors.postgres.generations import GenerationError
    from connectors.postgres.writer import PostgresSink
    from streams.exceptions import RefusedError, UnreachableError
    from streams.health import require_kafka

    sink = PostgresSink(settings)
    try:
        # Start-up: the broker and PostgreSQL must answer. RECON_SINK_MAX_RETRIES bounds the
        # attempts here as it does for batches; a rejected password is not worth a retry.
        attempt = 0
        while True:
            try:
                require_kafka(settings.kafka, settings.kafka.connect_timeout_ms / 1000)
                sink.open()
                break
            except (UnreachableError, RefusedError, SinkUnavailableError) as exc:
                refusal = _refusal(settings, exc)
                if refusal is not None:
                    log.error("%s; not retrying", refusal)
                    return EXIT_CONFIG
                attempt += 1
                if 0 <= settings.max_retries < attempt:
                    log.error("giving up at start-up after %d attempts: %s", attempt, exc)
                    return EXIT_RETRIES_EXHAUSTED
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("waiting for a dependency (attempt %d): %s", attempt, exc)
                wait = backoff_s(
                    attempt + 1, settings.retry_backoff_ms, settings.retry_backoff_max_ms
                )
                if stop.wait(wait):
                    return 0
        loop = SinkLoop(
            consumer if consumer is not None else Consumer(consumer_config(settings)),
            sink,
            settings.source_topics,
            LoopSettings(
                batch_size=settings.batch_size,
                linger_ms=settings.linger_ms,
                max_retries=settings.max_retries,
                retry_backoff_ms=settings.retry_backoff_ms,
                retry_backoff_max_ms=settings.retry_backoff_max_ms,
                shutdown_timeout_ms=settings.shutdown_timeout_ms,
            ),
        )
        if health is not None:
            health.alive = lambda: time.monotonic() - loop.last_turn < STUCK_AFTER_S
        log.info(
            "sink started: topics %s -> schema %s, group %s",
            ", ".join(settings.source_topics),
            settings.schema,
            settings.group_id,
        )
        try:
            code = loop.run(stop)
        except GenerationError as exc:
            log.error("%s", exc)
            return EXIT_RETIRED
        log.info(
            "sink stopped (exit %d): %d records in %d batches",
            code,
            loop.records_written,
            loop.batches_written,
        )
        return code
    finally:
        sink.close()


def run(args: argparse.Namespace) -> int:
    from connectors.postgres.settings import sink_settings_from_env
    from streams import logs

    logs.configure(level=args.log_level)
    settings = sink_settings_from_env()
    overrides: dict[str, Any] = {}
    if args.schema:
        overrides["schema"] = args.schema
        if settings.generation:
            overrides["readers_schema"] = settings.readers  # --schema names the write schema
    if args.group_id:
        overrides["group_id"] = args.group_id
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    settings.kafka.check()  # a wrong setting is one line (exit 78), before any client exists
    health = start_health(settings)

    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: flushing and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return run_sink(settings, stop, health=health)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.postgres", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())

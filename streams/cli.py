"""The ``recon`` command line: one entry point, subcommands load their modules lazily."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, help). Each module has ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("streams.demo", "run the end-to-end demo against the configured Kafka and PostgreSQL"),
    "sink": ("connectors.postgres.run", "consume the output topics into PostgreSQL (exactly-once)"),
    "db": ("connectors.postgres.db", "apply (migrate) or list (status) the sink's SQL migrations"),
    "worker": (
        "streams.worker.cli",
        "run the matching worker (Faust) configured from the environment",
    ),
    "topics": ("streams.worker.topics", "create and verify the co-partitioned topics"),
    "simulate": ("streams.simulate.cli", "produce simulated upstream traffic and its ground truth"),
    "replay": (
        "streams.ops.replay",
        "rebuild every result from the inputs into a new generation, then switch readers to it",
    ),
    "scale": (
        "streams.ops.scale",
        "move to more partitions under traffic: a new generation on re-partitioned inputs",
    ),
    "verify": (
        "streams.ops.verify_command",
        "the daily trial balance: every input in exactly one place, every row balanced",
    ),
    "report": (
        "streams.ops.report",
        "match rate, matches, exceptions and their ageing, dead letters (from PostgreSQL)",
    ),
}


# The commands that use the Kafka cluster: each first checks that it answers and accepts the
# credentials (streams.health.require_kafka), so a wrong setting is one line, not a hang. The
# worker and the sink check it themselves (they have their own retry and exit policy).
KAFKA_COMMANDS = frozenset({"demo", "topics", "simulate", "replay", "scale", "verify"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recon",
        description="Streaming payment reconciliation on Apache Kafka.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from streams import logs

    logs.configure()  # RECON_LOG_LEVEL / RECON_LOG_FORMAT; the worker and the sink re-apply
    return _run_checked(args)


def _run_checked(args: argparse.Namespace) -> int:
    """Run the command; a wrong setting or a dependency that refuses the settings (exit 78),
    or one that does not answer (exit 69), is one line on stderr, not a traceback."""
    import logging

    from streams.exceptions import (
        EXIT_CONFIG,
        EXIT_UNAVAILABLE,
        ConfigError,
        RefusedError,
        UnreachableError,
    )
    from streams.health import dependency_error, require_kafka
    from streams.settings import kafka_from_env

    log = logging.getLogger("streams.cli")
    try:
        if args.command in KAFKA_COMMANDS:
            kafka = kafka_from_env()
            require_kafka(kafka, kafka.connect_timeout_ms / 1000)
        code: int = args._run(args)
    except (RefusedError, ConfigError) as exc:
        log.critical("%s", exc)
        return EXIT_CONFIG
    except UnreachableError as exc:
        log.critical("%s", exc)
        return EXIT_UNAVAILABLE
    except Exception as exc:
        found = dependency_error(exc)
        if found is None:
            raise
        log.critical("%s", found)
        return EXIT_CONFIG if isinstance(found, RefusedError) else EXIT_UNAVAILABLE
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The ``recon`` command line: the one module that imports both sides, the stream processing
(``streams``) and the sink (``connectors``), and names every subcommand.

Dependencies point one way: ``connectors`` depends on the shared kernel (``streams.contract``
and the settings) and never on this module or the worker; this module depends on both.
Each subcommand module has ``add_arguments(parser)`` and ``run(args) -> int`` and imports its
heavy dependencies inside ``run``, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from connectors.postgres import db as db_command
from connectors.postgres import run as sink_command
from streams import decode_command, demo
from streams.ops import replay, report, scale, topics_command, verify_command
from streams.simulate import cli as simulate_command
from streams.worker import cli as worker_command


@dataclass(frozen=True, slots=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: dict[str, Subcommand] = {
    "demo": Subcommand(
        "run the end-to-end demo against the configured Kafka and PostgreSQL",
        demo.add_arguments,
        demo.run,
    ),
    "sink": Subcommand(
        "consume the output topics into PostgreSQL (exactly-once)",
        sink_command.add_arguments,
        sink_command.run,
    ),
    "db": Subcommand(
        "apply (migrate) or list (status) the sink's SQL migrations",
        db_command.add_arguments,
        db_command.run,
    ),
    "worker": Subcommand(
        "run the matching worker (Faust) configured from the environment",
        worker_command.add_arguments,
        worker_command.run,
    ),
    "topics": Subcommand(
        "create and verify the co-partitioned topics",
        topics_command.add_arguments,
        topics_command.run,
    ),
    "simulate": Subcommand(
        "produce simulated upstream traffic and its ground truth",
        simulate_command.add_arguments,
        simulate_command.run,
    ),
    "decode": Subcommand(
        "decode one record of a topic from a file, as the worker or the sink reads it",
        decode_command.add_arguments,
        decode_command.run,
    ),
    "replay": Subcommand(
        "rebuild every result from the inputs into a new generation, then switch readers to it",
        replay.add_arguments,
        replay.run,
    ),
    "scale": Subcommand(
        "move to more partitions under traffic: a new generation on re-partitioned inputs",
        scale.add_arguments,
        scale.run,
    ),
    "verify": Subcommand(
        "the daily trial balance: every input in exactly one place, every row balanced",
        verify_command.add_arguments,
        verify_command.run,
    ),
    "report": Subcommand(
        "match rate, matches, exceptions and their ageing, dead letters (from PostgreSQL)",
        report.add_arguments,
        report.run,
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
    for name, subcommand in SUBCOMMANDS.items():
        command = sub.add_parser(name, help=subcommand.help, description=subcommand.help)
        subcommand.add_arguments(command)
        command.set_defaults(_run=subcommand.run)
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

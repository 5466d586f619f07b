"""``recon topics create | describe``: create the co-partitioned topics, or describe them with
the lag of the worker's and the sink's consumer groups.

An operator command, so it lives with the others: the worker package knows how to create its
topics (:mod:`streams.worker.topics`), not which generation readers see.
"""

from __future__ import annotations

import argparse
import os
import sys

from streams.ops.describe import describe, render
from streams.ops.generations import current
from streams.worker.exceptions import TopologyError
from streams.worker.settings import worker_from_env
from streams.worker.topics import create_topics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create the input, output and changelog topics")
    create.add_argument("--replication-factor", type=int, default=1)
    sub.add_parser(
        "describe",
        help="each topic's partitions, retention and cleanup policy, and the lag of the "
        "worker's and the sink's consumer groups",
    )


def run(args: argparse.Namespace) -> int:
    settings = worker_from_env()
    try:
        if args.action == "describe":
            live = current(os.environ)  # RECON_GENERATION, or the generation readers see
            print(render(describe(live.worker, live.sink.group_id)))
            return 0
        for name, status in create_topics(settings, args.replication_factor).items():
            print(f"{status:8} {name} ({settings.partitions} partitions)")
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

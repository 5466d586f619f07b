"""``recon topics create``: the input, output and changelog topics, co-partitioned.

A reference must land on the same partition number in every topic (and in the state table's
changelog), so all of them are created with one partition count. Adding partitions later remaps
keys and strands open groups on their old partition: scaling needs a migration, not --alter.

Two changelog topics exist per app: the state changelog the worker writes in transactions and
restores from, and the one Faust requires its table to declare. Faust uses the latter only to
assign and route the table's partitions; nothing is ever written to it (docs/delivery.md).
"""

from __future__ import annotations

import argparse
import time

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import KafkaError, KafkaException, NewTopic

from streams.worker.exceptions import TopologyError
from streams.worker.settings import WorkerSettings, worker_from_env

STATE_TABLE = "recon-state"


def changelog_topic_name(settings: WorkerSettings) -> str:
    """The state changelog: compacted, written in transactions, read read_committed."""
    return f"{settings.app_id}-{STATE_TABLE}-changelog"


def faust_changelog_topic_name(settings: WorkerSettings) -> str:
    """What Faust's table declares as its changelog; it stays empty."""
    return f"{settings.app_id}-{STATE_TABLE}-faust-changelog"


def topic_names(settings: WorkerSettings) -> list[str]:
    """Every topic of one app, inputs first."""
    t = settings.topics
    return [
        t.payments,
        t.ledger,
        t.matched,
        t.exceptions,
        t.dlq,
        changelog_topic_name(settings),
        faust_changelog_topic_name(settings),
    ]


def topic_specs(settings: WorkerSettings, replication_factor: int) -> list[NewTopic]:
    compacted = {changelog_topic_name(settings), faust_changelog_topic_name(settings)}
    return [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=replication_factor,
            config={"cleanup.policy": "compact"} if name in compacted else {},
        )
        for name in topic_names(settings)
    ]


def create_topics(settings: WorkerSettings, replication_factor: int = 1) -> dict[str, str]:
    """Create what is missing; verify what exists has the same partition count."""
    admin = AdminClient(settings.kafka.confluent_config())
    specs = topic_specs(settings, replication_factor)
    outcome: dict[str, str] = {}
    for name, future in admin.create_topics(specs, operation_timeout=30).items():
        try:
            future.result(timeout=60)
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
    # A created topic reaches the metadata of every broker a moment later: wait for it.
    verify_copartitioned(settings, admin, wait_s=30 if "created" in outcome.values() else 0)
    return outcome


def verify_copartitioned(
    settings: WorkerSettings, admin: AdminClient | None = None, wait_s: float = 0
) -> None:
    admin = admin or AdminClient(settings.kafka.confluent_config())
    deadline = time.monotonic() + wait_s
    while True:
        metadata = admin.list_topics(timeout=30).topics
        wrong = []
        for spec in topic_specs(settings, 1):
            found = metadata.get(spec.topic)
            count = len(found.partitions) if found is not None else 0
            if count != settings.partitions:
                wrong.append(f"{spec.topic}: {count or 'missing'}")
        if not wrong or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if wrong:
        raise TopologyError(
            f"topics must all have {settings.partitions} partitions (RECON_PARTITIONS): "
            + ", ".join(wrong)
            + "; run `recon topics create`"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create the input, output and changelog topics")
    create.add_argument("--replication-factor", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    settings = worker_from_env()
    for name, status in create_topics(settings, args.replication_factor).items():
        print(f"{status:8} {name} ({settings.partitions} partitions)")
    return 0

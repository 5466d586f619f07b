"""``recon topics create``: the input, output and changelog topics, co-partitioned.

A reference must land on the same partition number in every topic (and in the state table's
changelog), so all of them are created with one partition count. Adding partitions later remaps
keys and strands open groups on their old partition: scaling needs a migration, not --alter.
"""

from __future__ import annotations

import argparse

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import KafkaError, KafkaException, NewTopic

from streams.worker.exceptions import TopologyError
from streams.worker.settings import WorkerSettings, worker_from_env


def topic_specs(settings: WorkerSettings, replication_factor: int) -> list[NewTopic]:
    t = settings.topics
    n = settings.partitions
    plain = [t.payments, t.ledger, t.matched, t.exceptions, t.dlq]
    from streams.worker.app import changelog_topic_name

    specs = [
        NewTopic(name, num_partitions=n, replication_factor=replication_factor) for name in plain
    ]
    specs.append(
        NewTopic(
            changelog_topic_name(settings),
            num_partitions=n,
            replication_factor=replication_factor,
            config={"cleanup.policy": "compact"},
        )
    )
    return specs


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
    verify_copartitioned(settings, admin)
    return outcome


def verify_copartitioned(settings: WorkerSettings, admin: AdminClient | None = None) -> None:
    admin = admin or AdminClient(settings.kafka.confluent_config())
    metadata = admin.list_topics(timeout=30).topics
    wrong = []
    for spec in topic_specs(settings, 1):
        found = metadata.get(spec.topic)
        count = len(found.partitions) if found is not None else 0
        if count != settings.partitions:
            wrong.append(f"{spec.topic}: {count or 'missing'}")
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

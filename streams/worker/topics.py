"""The input, output and changelog topics, co-partitioned (``recon topics create``:
:mod:`streams.ops.topics_command`).

A reference must land on the same partition number in every topic (and in the state table's
changelog), so all of them are created with one partition count. Adding partitions later remaps
keys and strands open groups on their old partition: scaling needs a migration, not --alter.

Two changelog topics exist per app: the state changelog the worker writes in transactions and
restores from, and the one Faust requires its table to declare. Faust uses the latter only to
assign and route the table's partitions; nothing is ever written to it (docs/delivery.md).
"""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.cimpl import KafkaError, KafkaException, NewTopic

from streams.worker.exceptions import TopologyError
from streams.worker.settings import WorkerSettings

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


def faust_internal_topic_names(settings: WorkerSettings) -> list[str]:
    """Topics Faust creates by itself for the app: its assignor's leader election topic."""
    return [f"{settings.app_id}-__assignor-__leader"]


def topic_roles(settings: WorkerSettings) -> dict[str, str]:
    """Each topic of the app and its role: input, output or changelog."""
    t = settings.topics
    return {
        t.payments: "input",
        t.ledger: "input",
        t.matched: "output",
        t.exceptions: "output",
        t.dlq: "output",
        changelog_topic_name(settings): "changelog",
        faust_changelog_topic_name(settings): "changelog",
    }


def topic_configs(settings: WorkerSettings) -> dict[str, dict[str, str]]:
    """The configs each topic is created with. Inputs keep a long retention because a replay
    reads them from the start; changelogs are compacted because a restore reads all of one."""
    by_role = {
        "input": {"cleanup.policy": "delete", "retention.ms": str(settings.input_retention_ms)},
        "output": {"cleanup.policy": "delete", "retention.ms": str(settings.output_retention_ms)},
        "changelog": {"cleanup.policy": "compact"},
    }
    return {name: by_role[role] for name, role in topic_roles(settings).items()}


def topic_specs(settings: WorkerSettings, replication_factor: int) -> list[NewTopic]:
    return [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=replication_factor,
            config=dict(config),
        )
        for name, config in topic_configs(settings).items()
    ]


def create_topics(settings: WorkerSettings, replication_factor: int = 1) -> dict[str, str]:
    """Create what is missing; verify what exists has the same partition count. Returns each
    topic's status: ``created``, ``exists``, or ``exists`` and how its configs differ."""
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
    existing = [name for name, status in outcome.items() if status == "exists"]
    for name, drift in config_drift(settings, admin, existing).items():
        outcome[name] = "exists; " + "; ".join(drift)
    return outcome


def current_configs(
    admin: AdminClient, names: list[str], keys: tuple[str, ...] = ("cleanup.policy", "retention.ms")
) -> dict[str, dict[str, str]]:
    """The given configs of each topic, as the broker reports them."""
    if not names:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    out: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=30).items():
        entries = future.result(timeout=60)
        out[resource.name] = {k: str(entries[k].value) for k in keys if k in entries}
    return out


def config_drift(
    settings: WorkerSettings, admin: AdminClient, names: list[str]
) -> dict[str, list[str]]:
    """How existing topics differ from the configs ``create`` would give them. A changelog
    that is not compacted is refused: a restore would miss every state key it deleted."""
    expected = topic_configs(settings)
    drift: dict[str, list[str]] = {}
    for name, actual in current_configs(admin, names).items():
        for key, want in expected[name].items():
            have = actual.get(key)
            if have != want:
                drift.setdefault(name, []).append(f"{key} is {have}, expected {want}")
    roles = topic_roles(settings)
    bad = [
        n for n, d in drift.items() if roles[n] == "changelog" and any("cleanup" in x for x in d)
    ]
    if bad:
        raise TopologyError(
            f"changelog topics must be compacted (cleanup.policy=compact): {', '.join(bad)}; "
            "alter them with kafka-configs.sh before starting a worker"
        )
    return drift


def verify_copartitioned(
    settings: WorkerSettings, admin: AdminClient | None = None, wait_s: float = 0
) -> None:
    admin = admin or AdminClient(settings.kafka.confluent_config())
    deadline = time.monotonic() + wait_s
    while True:
        metadata = admin.list_topics(timeout=30).topics
        wrong = []
        missing = False
        for spec in topic_specs(settings, 1):
            found = metadata.get(spec.topic)
            count = len(found.partitions) if found is not None else 0
            if count != settings.partitions:
                wrong.append(f"{spec.topic}: {count or 'missing'}")
                missing = missing or count == 0
        # Only a topic not yet in the metadata can still come right by waiting.
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if wrong:
        raise TopologyError(
            f"topics must all have {settings.partitions} partitions (RECON_PARTITIONS): "
            + ", ".join(wrong)
            + "; run `recon topics create`"
        )

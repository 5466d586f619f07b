"""``recon topics describe``: what an operator checks first.

Each topic's partitions, cleanup policy and retention, then the lag of the app's two consumer
groups: the worker (Faust's group is the app id) on the inputs and the sink on the outputs.
End offsets are the last stable offsets (read_committed), as both groups read.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.worker.settings import WorkerSettings
from streams.worker.topics import current_configs, topic_roles

_NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group has committed nothing there


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    role: str
    partitions: int  # 0: missing
    cleanup_policy: str | None
    retention_ms: int | None


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: nothing committed yet (the group starts at the earliest)
    end: int
    start: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed if self.committed is not None else self.start)


@dataclass(frozen=True, slots=True)
class Description:
    topics: list[TopicInfo]
    lags: list[PartitionLag]

    def group_lag(self, group: str) -> int:
        return sum(p.lag for p in self.lags if p.group == group)


def describe(settings: WorkerSettings, sink_group: str) -> Description:
    admin = AdminClient(settings.kafka.confluent_config())
    roles = topic_roles(settings)
    metadata = admin.list_topics(timeout=30).topics
    present = [name for name in roles if name in metadata]
    configs = current_configs(admin, present)
    topics = []
    for name, role in roles.items():
        found = metadata.get(name)
        config = configs.get(name, {})
        retention = config.get("retention.ms")
        topics.append(
            TopicInfo(
                name,
                role,
                len(found.partitions) if found is not None else 0,
                config.get("cleanup.policy"),
                int(retention) if retention is not None else None,
            )
        )
    groups = {
        settings.app_id: [t for t, r in roles.items() if r == "input"],
        sink_group: [t for t, r in roles.items() if r == "output"],
    }
    lags = []
    for group, names in groups.items():
        tps = [
            TopicPartition(name, p)
            for name in names
            if name in metadata
            for p in sorted(metadata[name].partitions)
        ]
        lags += group_lags(admin, group, tps)
    return Description(topics, lags)


def group_lags(admin: AdminClient, group: str, tps: list[TopicPartition]) -> list[PartitionLag]:
    if not tps:
        return []
    request = [ConsumerGroupTopicPartitions(group, tps)]
    answer = admin.list_consumer_group_offsets(request, request_timeout=30)[group].result(60)
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in answer.topic_partitions
        if tp.offset != _NO_OFFSET
    }
    ends = partition_offsets(admin, tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
    starts = partition_offsets(admin, tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
    return [
        PartitionLag(
            group,
            tp.topic,
            tp.partition,
            committed.get((tp.topic, tp.partition)),
            ends[(tp.topic, tp.partition)],
            starts[(tp.topic, tp.partition)],
        )
        for tp in tps
    ]


def partition_offsets(
    admin: AdminClient, tps: list[TopicPartition], spec: OffsetSpec
) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets(
        dict.fromkeys(tps, spec),
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=30,
    )
    return {(tp.topic, tp.partition): f.result(60).offset for tp, f in futures.items()}


def _retention(ms: int | None) -> str:
    if ms is None:
        return "?"
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def render(d: Description) -> str:
    lines = [
        f"{'topic':<44} {'role':<9} {'partitions':>10} {'cleanup':<8} {'retention':>9}",
    ]
    for t in d.topics:
        lines.append(
            f"{t.name:<44} {t.role:<9} {t.partitions or 'missing':>10} "
            f"{t.cleanup_policy or '?':<8} {_retention(t.retention_ms):>9}"
        )
    for group in dict.fromkeys(p.group for p in d.lags):
        lines.append("")
        lines.append(f"consumer group {group}: lag {d.group_lag(group):,}")
        lines.append(f"  {'topic':<42} {'partition':>9} {'committed':>12} {'end':>12} {'lag':>10}")
        for p in d.lags:
            if p.group == group:
                committed = "-" if p.committed is None else f"{p.committed:,}"
                lines.append(
                    f"  {p.topic:<42} {p.partition:>9} {committed:>12} {p.end:>12,} {p.lag:>10,}"
                )
    return "\n".join(lines)

"""``recon topics describe`` on the real broker: configs as created, and lag per group."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.ops.describe import describe, render
from streams.settings import KafkaSettings, TopicNames
from streams.worker.settings import WorkerSettings
from streams.worker.topics import create_topics, topic_names

WEEK_MS = 7 * 86_400_000


@pytest.fixture
def settings(kafka: KafkaSettings, kafka_admin: AdminClient) -> Iterator[WorkerSettings]:
    tag = uuid.uuid4().hex[:10]
    names = TopicNames(*(f"t.{tag}.{n}" for n in ("payments", "ledger", "matched", "exc", "dlq")))
    s = replace(
        WorkerSettings(),
        app_id=f"recon-test-{tag}",
        kafka=kafka,
        topics=names,
        partitions=2,
        input_retention_ms=WEEK_MS,
    )
    create_topics(s)
    yield s
    for future in kafka_admin.delete_topics(topic_names(s), operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def produce(kafka: KafkaSettings, topic: str, partition: int, n: int) -> None:
    p = Producer(kafka.confluent_config())
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, key=b"k", partition=partition)
    assert p.flush(30) == 0


def commit(kafka: KafkaSettings, group: str, tp: TopicPartition) -> None:
    c = Consumer({**kafka.confluent_config(), "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[tp], asynchronous=False)
    finally:
        c.close()


def test_describe_shows_configs_as_created_and_each_groups_lag(
    kafka: KafkaSettings, settings: WorkerSettings
) -> None:
    t = settings.topics
    produce(kafka, t.payments, 0, 5)
    produce(kafka, t.ledger, 1, 3)
    produce(kafka, t.matched, 0, 4)
    commit(kafka, settings.app_id, TopicPartition(t.payments, 0, 2))

    d = describe(settings, sink_group=f"{settings.app_id}-sink")

    by_name = {i.name: i for i in d.topics}
    assert all(i.partitions == 2 for i in d.topics)
    assert (by_name[t.payments].cleanup_policy, by_name[t.payments].retention_ms) == (
        "delete",
        WEEK_MS,
    )
    assert (by_name[t.matched].cleanup_policy, by_name[t.matched].retention_ms) == ("delete", -1)
    changelogs = [i for i in d.topics if i.role == "changelog"]
    assert len(changelogs) == 2
    assert {i.cleanup_policy for i in changelogs} == {"compact"}

    lag = {(p.group, p.topic, p.partition): (p.committed, p.end, p.lag) for p in d.lags}
    worker, sink = settings.app_id, f"{settings.app_id}-sink"
    assert lag[(worker, t.payments, 0)] == (2, 5, 3)
    assert lag[(worker, t.payments, 1)] == (None, 0, 0)
    assert lag[(worker, t.ledger, 1)] == (None, 3, 3)  # nothing committed: all of it is due
    assert lag[(sink, t.matched, 0)] == (None, 4, 4)
    assert {g for g, _, _ in lag} == {worker, sink}
    assert (d.group_lag(worker), d.group_lag(sink)) == (6, 4)

    text = render(d)
    assert f"consumer group {worker}: lag 6" in text
    assert f"consumer group {sink}: lag 4" in text
    assert "forever" in text
    assert "7d" in text

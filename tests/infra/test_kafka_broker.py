"""The real broker: a producer/consumer-group round trip and transactions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Consumer, KafkaError, Producer

from streams.settings import KafkaSettings


def _produce(
    kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]], **extra: object
) -> None:
    producer = Producer({**kafka.confluent_config(), "partitioner": "murmur2_random", **extra})
    errors: list[KafkaError] = []
    for key, value in records:
        producer.produce(
            topic, key=key, value=value, on_delivery=lambda e, _m: e and errors.append(e)
        )
    assert producer.flush(30) == 0
    assert errors == []


async def test_consumer_group_reads_every_record_and_commits(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("roundtrip", partitions=3)
    records = [(f"REF-{i}".encode(), orjson.dumps({"n": i})) for i in range(300)]
    _produce(kafka, topic, records)

    group = f"{topic}.group"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: dict[int, list[int]] = {}
    try:
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < len(records) and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                got.setdefault(tp.partition, []).extend(orjson.loads(r.value)["n"] for r in batch)
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(topic, p)) for p in got}
    finally:
        await consumer.stop()

    assert sorted(n for ns in got.values() for n in ns) == list(range(300))
    # Same key, same partition, in order: murmur2 keeps a reference on one partition.
    assert all(ns == sorted(ns) for ns in got.values())
    assert set(got) == {0, 1, 2}
    # Committed offsets equal the number of records read from each partition.
    assert committed == {p: len(ns) for p, ns in got.items()}

    # A second member of the same group starts from the committed offsets: nothing left.
    again = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await again.start()
    try:
        leftover = await asyncio.wait_for(again.getmany(timeout_ms=2000), timeout=30)
    finally:
        await again.stop()
    assert sum(len(b) for b in leftover.values()) == 0


def test_read_committed_sees_only_committed_transactions(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("txn", partitions=1)
    producer = Producer({**kafka.confluent_config(), "transactional.id": f"{topic}.tx"})
    producer.init_transactions(30)

    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=b"k", value=f"committed-{i}".encode())
    producer.commit_transaction(30)

    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=b"k", value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-last")
    producer.commit_transaction(30)

    def read(isolation: str) -> list[bytes]:
        consumer = Consumer(
            {
                **kafka.confluent_config(),
                "group.id": f"{topic}.{isolation}",
                "auto.offset.reset": "earliest",
                "isolation.level": isolation,
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        idle = 0
        while time.monotonic() < deadline and idle < 3:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1 if values else 0
                continue
            if msg.error():
                continue
            values.append(msg.value())
        consumer.close()
        return values

    assert read("read_committed") == [f"committed-{i}".encode() for i in range(5)] + [
        b"committed-last"
    ]
    # read_uncommitted also sees the aborted records: proof the abort really reached the log.
    uncommitted = read("read_uncommitted")
    assert [v for v in uncommitted if v.startswith(b"aborted")] == [
        f"aborted-{i}".encode() for i in range(5)
    ]

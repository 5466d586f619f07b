"""Bring a partition's local RocksDB up to the end of its state changelog.

The changelog is written in Kafka transactions (one per batch), so it is read ``read_committed``:
records of aborted batches, such as one torn by a kill -9, are never applied. Faust's own
recovery reads ``read_uncommitted`` and waits for the offset of the last record, which under
transactions is a commit marker it never receives; that is why the worker restores its state
itself (docs/delivery.md).

Restoring starts at the position stored with the local state (the beginning when there is none;
a data directory from before the bookkeeping column family has its position moved there first)
and ends at the partition's last stable offset, where librdkafka reports end of partition. Every
chunk of records is written with its new position in one WriteBatch, so an interrupted restore
resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from streams.settings import KafkaSettings
from streams.state.base import KeyValueStore
from streams.state.changelog import adopt_legacy_position, changelog_position, position_entry
from streams.state.exceptions import RestoreError


@dataclass(frozen=True, slots=True)
class Restored:
    partition: int
    start: int | None  # None: no local position, read from the beginning
    end: int
    records: int


def restore(
    kafka: KafkaSettings,
    topic: str,
    stores: Mapping[int, KeyValueStore],
    *,
    timeout_s: float = 300.0,
    chunk: int = 5_000,
) -> list[Restored]:
    """Apply every committed changelog record past each store's position; return what was read."""
    if not stores:
        return []
    consumer = Consumer(
        {
            **kafka.confluent_config(),
            "group.id": f"{topic}.restore",  # required by librdkafka; nothing is committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        return _restore(consumer, topic, stores, timeout_s, chunk)
    finally:
        consumer.close()


# A new topic, or one whose leader is moving, answers these until its metadata settles.
_TRANSIENT = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """The partition's low and high watermarks, waiting out a leader election."""
    deadline = time.monotonic() + timeout_s
    pause = 0.05
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=30, cached=False)
            return low, high
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() not in _TRANSIENT or time.monotonic() + pause > deadline:
                raise RestoreError(f"{tp.topic}[{tp.partition}]: {error.str()}") from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _restore(
    consumer: Consumer,
    topic: str,
    stores: Mapping[int, KeyValueStore],
    timeout_s: float,
    chunk: int,
) -> list[Restored]:
    starts: dict[int, int | None] = {}
    assignment = []
    pending: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in stores}
    counts = dict.fromkeys(stores, 0)
    ends: dict[int, int] = {}

    def write(partition: int, next_offset: int) -> None:
        stores[partition].write_with_bookkeeping(pending[partition], [position_entry(next_offset)])
        pending[partition] = []

    for partition, store in stores.items():
        adopt_legacy_position(store)
        start = changelog_position(store)
        # read_committed: the high watermark reported is the last stable offset.
        low, high = _watermarks(consumer, TopicPartition(topic, partition), timeout_s)
        if start is not None and start > high:
            raise RestoreError(
                f"{topic}[{partition}]: local state is at offset {start} but the changelog ends "
                f"at {high}; the topic was recreated or truncated. Delete the worker's data "
                "directory for this partition and restart to rebuild it from the changelog."
            )
        starts[partition] = start
        if (start if start is not None else low) >= high:
            # Nothing to read (a new partition, or a worker restarted on current state): no
            # consumer poll, which would wait for the end-of-partition event.
            if start != high:
                write(partition, high)
            ends[partition] = high
            continue
        assignment.append(
            TopicPartition(topic, partition, OFFSET_BEGINNING if start is None else start)
        )
    if not assignment:
        return [Restored(p, starts[p], ends[p], counts[p]) for p in stores]
    consumer.assign(assignment)
    deadline = time.monotonic() + timeout_s

    last: dict[int, int] = {}
    while len(ends) < len(stores):
        if time.monotonic() > deadline:
            missing = sorted(set(stores) - set(ends))
            raise RestoreError(f"{topic}: restore of partitions {missing} timed out")
        # A short wait: consume() returns early only once it has ``chunk`` messages.
        for msg in consumer.consume(num_messages=chunk, timeout=0.1):
            where = msg.partition()
            assert where is not None
            partition = where
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    end = msg.offset()
                    assert end is not None
                    if partition not in ends:
                        write(partition, end)
                        ends[partition] = end
                    continue
                raise RestoreError(f"{topic}[{partition}]: {err}")
            key = msg.key()
            if key is None:
                continue  # not ours: the worker always writes keyed records
            pending[partition].append((key, msg.value()))
            counts[partition] += 1
            offset = msg.offset()
            assert offset is not None
            last[partition] = offset
        for partition, changes in pending.items():
            if len(changes) >= chunk:
                write(partition, last[partition] + 1)
    return [Restored(p, starts[p], ends[p], counts[p]) for p in stores]

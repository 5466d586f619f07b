"""Restoring RocksDB from the transactional state changelog, on the real broker.

The torn batch of a worker killed mid-commit is played here without a kill: records sent in a
transaction that never commits, then the same transactional id registered again (what a
restarted worker does), which aborts it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.settings import KafkaSettings
from streams.state.base import KeyValueStore
from streams.state.changelog import (
    LEGACY_POSITION_KEY,
    changelog_position,
    position_entry,
)
from streams.state.memory import MemoryStore
from streams.state.recovery import RestoreError, restore
from streams.state.rocksdict_store import RocksDictStore
from streams.worker.sender import TransactionalSender

NewTopic = Callable[..., str]


def sender(kafka: KafkaSettings, topic: str, txn_id: str) -> TransactionalSender:
    s = TransactionalSender(kafka, topic, txn_id, transaction_timeout_ms=10_000)
    s.init()
    return s


def commit_batch(
    s: TransactionalSender, changes: list[tuple[int, bytes, bytes | None]]
) -> dict[int, int]:
    s.begin()
    for partition, key, value in changes:
        s.changelog(partition, [(key, value)])
    return s.commit()


def state(store: KeyValueStore) -> dict[bytes, bytes]:
    return dict(store.scan(b"", b"\xff" * 8))  # the position is not among them


@pytest.fixture
def changelog(new_topic: NewTopic) -> str:
    return new_topic("changelog", partitions=2, config={"cleanup.policy": "compact"})


def test_restore_applies_committed_batches_and_skips_a_torn_one(
    kafka: KafkaSettings, changelog: str
) -> None:
    txn_id = f"restore-{uuid.uuid4().hex[:8]}"
    first = sender(kafka, changelog, txn_id)
    commit_batch(first, [(0, b"a", b"1"), (0, b"b", b"1"), (1, b"z", b"1")])
    positions = commit_batch(first, [(0, b"a", b"2"), (0, b"b", None)])
    # The torn batch: part of it reaches the broker, then the worker dies before the commit.
    first.begin()
    first.changelog(0, [(b"a", b"torn")])
    first.changelog(0, [(b"c", b"torn")])
    first.flush()
    # The restarted worker registers the same id, which aborts the open transaction.
    sender(kafka, changelog, txn_id)

    stores = {0: MemoryStore(), 1: MemoryStore()}
    done = {r.partition: r for r in restore(kafka, changelog, stores, timeout_s=60)}

    assert state(stores[0]) == {b"a": b"2"}
    assert state(stores[1]) == {b"z": b"1"}
    assert done[0].records == 4  # both committed batches, the tombstone included
    assert done[0].start is None
    # The position is past the last committed record of partition 0, markers included.
    end0 = changelog_position(stores[0])
    assert end0 is not None
    assert end0 >= positions[0]
    assert done[0].end == end0


def test_restore_resumes_from_the_stored_position(
    kafka: KafkaSettings, changelog: str, tmp_path: Path
) -> None:
    s = sender(kafka, changelog, f"restore-{uuid.uuid4().hex[:8]}")
    commit_batch(s, [(1, b"k1", b"v1")])
    store = RocksDictStore(tmp_path / "p1")
    try:
        assert restore(kafka, changelog, {1: store}, timeout_s=60)[0].records == 1
        commit_batch(s, [(1, b"k2", b"v2"), (1, b"k1", None)])

        again = restore(kafka, changelog, {1: store}, timeout_s=60)[0]

        assert again.records == 2  # only what came after the stored position
        assert store.get(b"k1") is None
        assert store.get(b"k2") == b"v2"
        assert restore(kafka, changelog, {1: store}, timeout_s=60)[0].records == 0
    finally:
        store.close()


def test_a_data_directory_from_before_the_bookkeeping_column_family_resumes_where_it_stood(
    kafka: KafkaSettings, changelog: str, tmp_path: Path
) -> None:
    """An upgraded worker keeps its state: the position it kept among the engine's keys moves
    to the bookkeeping column family, and the restore reads on from it, not from the start."""
    s = sender(kafka, changelog, f"restore-{uuid.uuid4().hex[:8]}")
    first = commit_batch(s, [(0, b"Gk1", b"v1"), (0, b"Gk2", b"v2")])
    commit_batch(s, [(0, b"Gk3", b"v3")])
    store = RocksDictStore(tmp_path / "p0")
    try:
        # As the previous version left it: its state up to the first batch, the position
        # among the engine's keys, and no bookkeeping column family.
        store.write_many(
            [(b"Gk1", b"v1"), (b"Gk2", b"v2"), (LEGACY_POSITION_KEY, b"%d" % first[0])]
        )
        store.close()
        store = RocksDictStore(tmp_path / "p0")

        done = restore(kafka, changelog, {0: store}, timeout_s=60)[0]

        assert (done.start, done.records) == (first[0], 1)  # only the batch after it
        assert state(store) == {b"Gk1": b"v1", b"Gk2": b"v2", b"Gk3": b"v3"}
        assert store.get(LEGACY_POSITION_KEY) is None
        assert changelog_position(store) == done.end
    finally:
        store.close()


def test_local_state_ahead_of_the_changelog_is_refused(
    kafka: KafkaSettings, changelog: str
) -> None:
    """E.g. the topic was deleted and recreated under a worker that kept its data dir."""
    store = MemoryStore()
    store.write_with_bookkeeping([], [position_entry(1000)])
    with pytest.raises(RestoreError, match="ends at 0"):
        restore(kafka, changelog, {0: store}, timeout_s=30)


def test_a_partition_without_a_leader_is_waited_for_then_refused_by_name(
    kafka: KafkaSettings,
) -> None:
    """A changelog whose leader is moving (or not yet elected, right after creation) answers
    'not leader' or 'unknown partition'. Restore waits that out within its timeout, then names the
    partition instead of letting librdkafka's exception kill the worker."""
    missing = f"t.never-created.{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with pytest.raises(RestoreError, match=rf"{re.escape(missing)}\[0\]"):
        restore(kafka, missing, {0: MemoryStore()}, timeout_s=2)
    assert time.monotonic() - started >= 1.0  # it retried instead of failing at once


def test_outputs_of_an_aborted_batch_stay_invisible_to_read_committed_readers(
    kafka: KafkaSettings, changelog: str, new_topic: NewTopic
) -> None:
    """The sink reads read_committed, so it never sees the outputs of a batch whose state
    changes were lost with it."""
    from confluent_kafka import Consumer, TopicPartition

    outputs = new_topic("outputs", partitions=1)
    txn_id = f"restore-{uuid.uuid4().hex[:8]}"
    s = sender(kafka, changelog, txn_id)
    s.begin()
    s.changelog(0, [(b"a", b"1")])
    s.send(outputs, b"a", b"committed", 0)
    s.commit()
    s.begin()
    s.changelog(0, [(b"a", b"2")])
    s.send(outputs, b"a", b"aborted", 0)
    s.flush()
    sender(kafka, changelog, txn_id)  # the restart aborts it

    consumer = Consumer(
        kafka.confluent_config()
        | {"group.id": f"probe-{uuid.uuid4().hex[:6]}", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(outputs, 0, 0)])
    seen = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None, "no end of partition within 10 s"
            if msg.error():
                break
            seen.append(msg.value())
    finally:
        consumer.close()
    assert seen == [b"committed"]

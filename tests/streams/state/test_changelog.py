"""StagedStore over a MemoryStore: changes go to the changelog at once, to RocksDB on apply."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from streams.state.batching import BatchingStore
from streams.state.changelog import (
    POSITION_KEY,
    StagedStore,
    changelog_position,
)
from streams.state.exceptions import StagedWriteError
from streams.state.memory import MemoryStore

Sent = list[tuple[int, bytes, bytes | None]]


def make(partition: int = 4) -> tuple[StagedStore, MemoryStore, Sent]:
    local = MemoryStore()
    sent: Sent = []

    def send(p: int, changes: Sequence[tuple[bytes, bytes | None]]) -> None:
        sent.extend((p, key, value) for key, value in changes)

    return StagedStore(local, partition, send), local, sent


def test_writes_are_sent_with_the_partition_but_reach_local_state_only_on_apply() -> None:
    store, local, sent = make(4)
    local.put(b"gone", b"x")

    store.write_many([(b"a", b"1"), (b"gone", None)])

    assert sent == [(4, b"a", b"1"), (4, b"gone", None)]
    assert local.get(b"a") is None  # not before the transaction committed
    assert local.get(b"gone") == b"x"

    store.apply(position=17)

    assert local.get(b"a") == b"1"
    assert local.get(b"gone") is None
    assert changelog_position(local) == 17
    assert store.staged == 0


def test_the_position_is_never_sent_to_the_changelog() -> None:
    store, _, sent = make(0)
    store.put(b"k", b"v")
    store.apply(position=3)
    assert [key for _, key, _ in sent] == [b"k"]
    assert POSITION_KEY not in {key for _, key, _ in sent}


def test_apply_without_changes_leaves_the_position_alone() -> None:
    store, local, _ = make(0)
    local.put(POSITION_KEY, b"9")
    store.apply(position=None)
    assert changelog_position(local) == 9


def test_reading_after_staging_is_refused() -> None:
    """A read would miss the staged writes: the worker flushes each partition once per batch."""
    store, _, _ = make(1)
    store.put(b"k", b"v")
    with pytest.raises(StagedWriteError):
        store.get(b"k")
    with pytest.raises(StagedWriteError):
        list(store.scan(b"", b"\xff"))


def test_batching_overlay_flush_stages_each_touched_key_once() -> None:
    """How the worker uses it: the engine writes into a BatchingStore over this store."""
    store, local, sent = make(3)
    local.put(b"gone", b"x")
    overlay = BatchingStore(store)

    overlay.put(b"k", b"1")
    overlay.put(b"k", b"2")
    overlay.delete(b"gone")
    overlay.put(b"tmp", b"t")
    overlay.delete(b"tmp")
    assert overlay.get(b"gone") is None
    assert sent == []  # nothing leaves before the flush

    assert overlay.flush() == 3
    assert sorted(sent, key=lambda s: s[1]) == [
        (3, b"gone", None),
        (3, b"k", b"2"),
        (3, b"tmp", None),
    ]
    store.apply(position=40)
    assert [(k, v) for k, v in local.scan(b"a", b"\xff")] == [(b"k", b"2")]

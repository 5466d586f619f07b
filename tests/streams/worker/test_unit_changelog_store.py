"""ChangeloggedStore over a MemoryStore: every write goes to both, with the explicit partition."""

from __future__ import annotations

from collections.abc import Iterator

from streams.state.batching import BatchingStore
from streams.state.memory import MemoryStore
from streams.worker.changelog_store import ChangeloggedStore

Sent = list[tuple[int, bytes, bytes | None]]


def make(partition: int = 4) -> tuple[ChangeloggedStore, MemoryStore, Sent]:
    local = MemoryStore()
    sent: Sent = []

    def send(p: int, key: bytes, value: bytes | None) -> None:
        sent.append((p, key, value))

    return ChangeloggedStore(local, partition, send), local, sent


def test_put_reaches_local_store_and_changelog() -> None:
    store, local, sent = make(4)

    store.put(b"a", b"1")
    store.put(b"a", b"2")

    assert local.get(b"a") == b"2"
    assert store.get(b"a") == b"2"
    assert sent == [(4, b"a", b"1"), (4, b"a", b"2")]


def test_delete_sends_a_tombstone() -> None:
    store, local, sent = make(1)
    store.put(b"k", b"v")

    store.delete(b"k")

    assert local.get(b"k") is None
    assert store.get(b"k") is None
    assert sent == [(1, b"k", b"v"), (1, b"k", None)]


def test_write_many_from_a_one_shot_iterator_reaches_both() -> None:
    store, local, sent = make(7)
    local.put(b"c", b"old")

    def changes() -> Iterator[tuple[bytes, bytes | None]]:
        yield b"b", b"2"
        yield b"c", None
        yield b"d", b"4"

    store.write_many(changes())

    assert list(local.scan(b"", b"\xff")) == [(b"b", b"2"), (b"d", b"4")]
    assert sent == [(7, b"b", b"2"), (7, b"c", None), (7, b"d", b"4")]


def test_reads_come_from_the_local_store_and_send_nothing() -> None:
    store, local, sent = make(0)
    for key in (b"x1", b"x2", b"y1"):
        local.put(key, key.upper())

    assert store.get(b"x2") == b"X2"
    assert list(store.scan(b"x", b"y")) == [(b"x1", b"X1"), (b"x2", b"X2")]
    assert store.first(b"y", b"z") == (b"y1", b"Y1")
    assert sent == []


def test_batching_overlay_flush_sends_each_touched_key_once() -> None:
    """How the worker uses it: the engine writes into a BatchingStore over this store."""
    store, local, sent = make(3)
    store.put(b"gone", b"x")
    sent.clear()
    overlay = BatchingStore(store)

    overlay.put(b"k", b"1")
    overlay.put(b"k", b"2")
    overlay.delete(b"gone")
    overlay.put(b"tmp", b"t")
    overlay.delete(b"tmp")
    assert sent == []  # nothing leaves before the flush

    assert overlay.flush() == 3
    assert sorted(sent, key=lambda s: s[1]) == [
        (3, b"gone", None),
        (3, b"k", b"2"),
        (3, b"tmp", None),
    ]
    assert list(local.scan(b"", b"\xff")) == [(b"k", b"2")]

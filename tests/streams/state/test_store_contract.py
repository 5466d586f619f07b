"""Every store backend behaves like an ordered dict of bytes (checked against a plain dict)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.state import (
    KeyValueStore,
    MemoryStore,
    PartitionTransaction,
    StoreClosedError,
    prefix_end,
)
from streams.state.rocksdict_store import RocksDictStore
from streams.state.sorted_keys import SortedKeys

StoreMaker = Callable[[Path], "contextmanager[KeyValueStore]"]


@contextmanager
def memory(_: Path) -> Iterator[KeyValueStore]:
    yield MemoryStore()


@contextmanager
def rocks(tmp: Path) -> Iterator[KeyValueStore]:
    store = RocksDictStore(tmp / "db")
    try:
        yield store
    finally:
        store.close()


@contextmanager
def batching_memory(_: Path) -> Iterator[KeyValueStore]:
    yield PartitionTransaction(MemoryStore())


@contextmanager
def batching_rocks(tmp: Path) -> Iterator[KeyValueStore]:
    with rocks(tmp) as inner:
        yield PartitionTransaction(inner)


MAKERS = {
    "memory": memory,
    "rocksdict": rocks,
    "batching-memory": batching_memory,
    "batching-rocksdict": batching_rocks,
}

keys_st = st.binary(min_size=0, max_size=3).map(lambda b: b"k" + b)
ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys_st, st.binary(min_size=1, max_size=4)),
        st.tuples(st.just("insert"), keys_st, st.binary(min_size=1, max_size=4)),
        st.tuples(st.just("delete"), keys_st, st.just(b"")),
        st.tuples(st.just("flush"), st.just(b""), st.just(b"")),
        st.tuples(st.just("scan"), keys_st, keys_st),
    ),
    max_size=120,
)


@pytest.mark.parametrize("name", sorted(MAKERS))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops_st)
def test_behaves_like_an_ordered_dict(
    name: str, ops: list[tuple[str, bytes, bytes]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    model: dict[bytes, bytes] = {}
    with MAKERS[name](tmp_path_factory.mktemp(name)) as store:
        for op, a, b in ops:
            if op == "put" or (op == "insert" and a in model):
                store.put(a, b)
                model[a] = b
            elif op == "insert":  # only of a key the store does not hold
                store.insert(a, b)
                model[a] = b
            elif op == "delete":
                store.delete(a)
                model.pop(a, None)
            elif op == "flush":
                if isinstance(store, PartitionTransaction):
                    store.flush()
            else:
                lo, hi = min(a, b), max(a, b)
                expected = sorted((k, v) for k, v in model.items() if lo <= k < hi)
                assert list(store.scan(lo, hi)) == expected
                assert store.first(lo, hi) == (expected[0] if expected else None)
            assert store.get(a) == model.get(a)
        assert list(store.scan(b"", b"\xff")) == sorted(model.items())
        if isinstance(store, PartitionTransaction):
            store.flush()
            assert list(store.store.scan(b"", b"\xff")) == sorted(model.items())


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_scan_survives_deletes_during_iteration(name: str, tmp_path: Path) -> None:
    with MAKERS[name](tmp_path) as store:
        for i in range(3000):
            store.put(i.to_bytes(4, "big"), b"v")
        seen = []
        for key, _ in store.scan(b"", b"\xff"):
            seen.append(key)
            store.delete(key)
        assert len(seen) == 3000
        assert seen == sorted(seen)
        assert list(store.scan(b"", b"\xff")) == []


class _Recording(MemoryStore):
    """A backing store that keeps every ``write_many`` call's changes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[tuple[bytes, bytes | None]]] = []

    def write_many(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        batch = list(changes)
        self.writes.append(batch)
        super().write_many(batch)


def test_batching_writes_each_key_once_on_flush() -> None:
    backing = _Recording()
    writes = backing.writes
    backing.put(b"gone", b"x")
    store = PartitionTransaction(backing)
    for i in range(10):
        store.put(b"a", bytes([i]))
    store.delete(b"gone")
    store.put(b"b", b"1")
    store.delete(b"b")
    assert backing.get(b"a") is None  # nothing written before flush
    assert store.get(b"a") == bytes([9])
    assert store.get(b"gone") is None
    assert store.pending == 3
    assert store.flush() == 3
    assert writes == [[(b"a", bytes([9])), (b"gone", None), (b"b", None)]]
    assert list(backing.scan(b"", b"\xff")) == [(b"a", bytes([9]))]
    assert store.flush() == 0


def test_rocksdict_persists_and_refuses_use_after_close(tmp_path: Path) -> None:
    store = RocksDictStore(tmp_path / "db")
    store.write_many([(b"a", b"1"), (b"b", b"2"), (b"a", None)])
    store.close()
    store = RocksDictStore(tmp_path / "db")
    assert list(store.scan(b"", b"z")) == [(b"b", b"2")]
    store.close()
    with pytest.raises(StoreClosedError):
        store.get(b"b")


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"G", b"H"), (b"G\x00\xff", b"G\x01"), (b"\xff\xff", b"\xff" * 66), (b"", b"\xff" * 64)],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


def test_sorted_keys_splits_and_merges_chunks() -> None:
    keys = SortedKeys()
    values = [(i * 7919 % 5000).to_bytes(2, "big") for i in range(5000)]
    for v in values:
        keys.add(v)
    assert list(keys.irange(b"", b"\xff\xff\xff")) == sorted(values)
    for v in values[::2]:
        keys.remove(v)
    assert list(keys.irange(b"", b"\xff\xff\xff")) == sorted(values[1::2])
    assert len(keys) == 2500


def test_batching_writes_nothing_for_keys_born_and_gone_in_one_batch() -> None:
    backing = _Recording()
    writes = backing.writes
    backing.put(b"old", b"x")
    store = PartitionTransaction(backing)
    store.insert(b"new", b"1")  # inserted (known absent), then deleted: no write
    store.delete(b"new")
    assert store.get(b"read") is None  # read absent from the backing store
    store.put(b"read", b"2")
    store.delete(b"read")  # no write either
    store.insert(b"back", b"3")
    store.delete(b"back")
    store.put(b"back", b"4")  # deleted, then put again: written
    store.delete(b"old")  # held by the backing store: its tombstone is written
    assert store.flush() == 2
    assert writes == [[(b"back", b"4"), (b"old", None)]]
    assert list(backing.scan(b"", b"\xff")) == [(b"back", b"4")]

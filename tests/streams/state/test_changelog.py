"""The changelog position in RocksDB's bookkeeping column family, and data directories from
before it (the position among the engine's keys), which keep working."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.stores.rocksdb import RocksDBOptions

from streams.state.base import KeyValueStore
from streams.state.changelog import (
    LEGACY_POSITION_KEY,
    adopt_legacy_position,
    changelog_position,
    position_entry,
)
from streams.state.exceptions import StateError
from streams.state.memory import MemoryStore
from streams.state.rocksdict_store import RocksDictStore
from streams.state.transaction import PartitionTransaction


def _commit(store: KeyValueStore, changes: dict[bytes, bytes | None], position: int) -> None:
    tx = PartitionTransaction(store, 0, lambda p, c: None)
    for key, value in changes.items():
        if value is None:
            tx.delete(key)
        else:
            tx.put(key, value)
    tx.prepare()
    tx.commit(position)


def test_the_position_is_kept_apart_from_the_engines_keys(tmp_path: Path) -> None:
    store = RocksDictStore(tmp_path / "db")
    assert changelog_position(store) is None  # a new directory: no column family yet
    _commit(store, {b"Gk": b"v"}, 12)
    assert changelog_position(store) == 12
    # Every key sorts with the engine's: none of them is bookkeeping.
    assert list(store.scan(b"", b"\xff" * 8)) == [(b"Gk", b"v")]
    store.close()
    store = RocksDictStore(tmp_path / "db")
    assert changelog_position(store) == 12
    store.close()


def test_faust_opens_a_directory_with_the_bookkeeping_column_family(tmp_path: Path) -> None:
    """Faust opens each table partition's DB itself, naming no column family."""
    store = RocksDictStore(tmp_path / "db")
    _commit(store, {b"Gk": b"v"}, 7)
    store.close()
    db = RocksDBOptions().open(tmp_path / "db")
    try:
        faust_side = RocksDictStore.from_db(db)
        assert changelog_position(faust_side) == 7
        assert faust_side.get(b"Gk") == b"v"
    finally:
        db.close()


def test_no_column_family_handle_outlives_a_write(tmp_path: Path) -> None:
    """Faust closes a partition's DB on revocation and opens it again on assignment: a handle
    we kept would hold the DB's lock, and that open would fail."""
    db = RocksDBOptions().open(tmp_path / "db")
    store = RocksDictStore.from_db(db)  # kept alive, as a store object can be
    _commit(store, {b"Gk": b"v"}, 3)
    assert changelog_position(store) == 3
    db.close()
    again = RocksDBOptions().open(tmp_path / "db")
    assert changelog_position(RocksDictStore.from_db(again)) == 3
    again.close()


def test_a_legacy_position_is_adopted_in_one_write(tmp_path: Path) -> None:
    store = RocksDictStore(tmp_path / "db")
    # As the previous version wrote it: the position among the engine's keys.
    store.write_many([(b"Gk", b"v"), (LEGACY_POSITION_KEY, b"41")])
    store.close()
    store = RocksDictStore(tmp_path / "db")
    assert changelog_position(store) is None

    assert adopt_legacy_position(store)

    assert changelog_position(store) == 41
    assert list(store.scan(b"", b"\xff" * 8)) == [(b"Gk", b"v")]
    assert not adopt_legacy_position(store)  # once
    assert changelog_position(store) == 41
    store.close()


def test_a_memory_store_keeps_bookkeeping_apart_too() -> None:
    store = MemoryStore()
    store.write_with_bookkeeping([(b"Gk", b"v")], [position_entry(5)])
    assert changelog_position(store) == 5
    assert list(store.scan(b"", b"\xff")) == [(b"Gk", b"v")]


def test_a_store_without_bookkeeping_says_so() -> None:
    tx = PartitionTransaction(MemoryStore())
    with pytest.raises(StateError, match="keeps no bookkeeping"):
        changelog_position(tx)

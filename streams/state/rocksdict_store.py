"""RocksDB store through rocksdict, in raw mode (bytes keys ordered bytewise, bytes values).

The engine's keys are in the default column family; the bookkeeping (where the state stands in
its changelog) in a column family of its own, :data:`BOOKKEEPING`, created at its first write.
rocksdict opens every column family a DB has, so Faust's own open of the DB keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import cast

from rocksdict import ColumnFamily, Options, Rdict, RdictIter, ReadOptions, WriteBatch

from streams.state.base import KeyValueStore
from streams.state.exceptions import StateError, StoreClosedError

BOOKKEEPING = "recon-bookkeeping"


class RocksDictStore(KeyValueStore):
    """``first`` reuses one iterator, seeking it: the engine asks for the first entry of an
    index once or twice per event, and a new RocksDB iterator per call cost more than the
    rest of the lookup. An iterator reads the snapshot of its creation, so any write through
    this store drops it; writes through another store object of the same DB are not seen by
    ``first`` until then (the worker makes one store object per transaction, and writes
    through it only after its reads)."""

    def __init__(self, path: str | Path, options: Options | None = None) -> None:
        opts = options if options is not None else Options(raw_mode=True)
        self._iter: RdictIter | None = None
        try:
            self._db: Rdict | None = Rdict(str(path), options=opts)
        except Exception as exc:  # rocksdict raises plain exceptions on open failures
            raise StateError(f"cannot open RocksDB at {path}: {exc}") from exc

    @classmethod
    def from_db(cls, db: Rdict) -> RocksDictStore:
        """Wrap a DB someone else opened and owns (e.g. a Faust table's partition DB)."""
        store = cls.__new__(cls)
        store._db = db
        store._iter = None
        return store

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise StoreClosedError("RocksDictStore is closed")
        return self._db

    def close(self) -> None:
        self._iter = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._iter = None
        self.db.put(key, value)

    def delete(self, key: bytes) -> None:
        self._iter = None
        self.db.delete(key)

    def first(self, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
        it = self._iter
        if it is None:
            it = self._iter = self.db.iter(ReadOptions())
        it.seek(start)
        if it.valid():
            key = cast(bytes, it.key())
            if key < end:
                return key, cast(bytes, it.value())
        return None

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        read_opt = ReadOptions()
        read_opt.set_iterate_upper_bound(end)
        # RocksDB iterators read from an implicit snapshot, so concurrent writes are safe.
        for key, value in self.db.items(from_key=start, read_opt=read_opt):
            yield cast(bytes, key), cast(bytes, value)

    def write_many(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        self._iter = None
        self.db.write(self._batch(changes))

    @staticmethod
    def _batch(changes: Iterable[tuple[bytes, bytes | None]]) -> WriteBatch:
        batch = WriteBatch(raw_mode=True)
        for key, value in changes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        return batch

    # A column family handle is looked up per use, never kept: a live handle keeps the DB open
    # (and its lock held) after Faust closes it on a revocation, and Faust's next open would fail.

    def _bookkeeping(self, create: bool) -> ColumnFamily | None:
        db = self.db
        try:
            return db.get_column_family_handle(BOOKKEEPING)
        except Exception:  # rocksdict raises a plain Exception for an unknown column family
            if not create:
                return None
        db.create_column_family(BOOKKEEPING, Options(raw_mode=True))
        return db.get_column_family_handle(BOOKKEEPING)

    def get_bookkeeping(self, key: bytes) -> bytes | None:
        if self._bookkeeping(create=False) is None:
            return None
        value: bytes | None = self.db.get_column_family(BOOKKEEPING).get(key)
        return value

    def write_with_bookkeeping(
        self,
        changes: Iterable[tuple[bytes, bytes | None]],
        bookkeeping: Sequence[tuple[bytes, bytes]],
    ) -> None:
        self._iter = None
        batch = self._batch(changes)
        handle = self._bookkeeping(create=True)
        for key, value in bookkeeping:
            batch.put(key, value, handle)
        self.db.write(batch)

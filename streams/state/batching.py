"""A write-batching overlay over another store.

Reads look in the overlay first; writes and deletes stay in the overlay (a delete is kept as a
tombstone, ``None``) until :meth:`flush`, which hands every touched key once to the backing
store's ``write_many`` (one RocksDB ``WriteBatch`` for :class:`RocksDictStore`). ``scan`` merges
the overlay and the backing store in key order, the overlay winning and tombstones hiding keys.

The overlay's key order is kept lazily: new keys wait in a list and are merged into a sorted
list at the next scan (one C-level sort when many are waiting), since a batch writes far more
often than it scans.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from streams.state.base import KeyValueStore


class BatchingStore(KeyValueStore):
    __slots__ = ("_backing", "_new", "_overlay", "_sorted")

    def __init__(self, backing: KeyValueStore) -> None:
        self._backing = backing
        self._overlay: dict[bytes, bytes | None] = {}
        self._sorted: list[bytes] = []  # overlay keys in order, except those in _new
        self._new: list[bytes] = []

    @property
    def backing(self) -> KeyValueStore:
        return self._backing

    @property
    def pending(self) -> int:
        """How many keys the next flush will write."""
        return len(self._overlay)

    def get(self, key: bytes) -> bytes | None:
        overlay = self._overlay
        if key in overlay:
            return overlay[key]
        return self._backing.get(key)

    def _set(self, key: bytes, value: bytes | None) -> None:
        if key not in self._overlay:
            self._new.append(key)
        self._overlay[key] = value

    def _keys_between(self, start: bytes, end: bytes) -> list[bytes]:
        if self._new:
            if len(self._new) * 8 > len(self._sorted):
                self._sorted = sorted(self._overlay)
            else:
                for key in self._new:
                    insort(self._sorted, key)
            self._new = []
        keys = self._sorted
        return keys[bisect_left(keys, start) : bisect_left(keys, end)]

    def put(self, key: bytes, value: bytes) -> None:
        self._set(key, value)

    def delete(self, key: bytes) -> None:
        self._set(key, None)

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        overlay = self._overlay
        mine = iter(self._keys_between(start, end))
        theirs = self._backing.scan(start, end)
        mkey = next(mine, None)
        titem = next(theirs, None)
        while mkey is not None or titem is not None:
            if titem is None or (mkey is not None and mkey <= titem[0]):
                assert mkey is not None
                if titem is not None and titem[0] == mkey:
                    titem = next(theirs, None)
                value = overlay.get(mkey)
                if value is not None:  # None: a tombstone (or discarded mid-scan)
                    yield mkey, value
                mkey = next(mine, None)
            else:
                yield titem
                titem = next(theirs, None)

    def flush(self) -> int:
        """Write every touched key once to the backing store; return how many."""
        if not self._overlay:
            return 0
        changes = list(self._overlay.items())
        self._backing.write_many(changes)
        self.discard()
        return len(changes)

    def discard(self) -> None:
        """Forget unflushed writes (e.g. after a failed batch, before reprocessing it)."""
        self._overlay = {}
        self._sorted = []
        self._new = []

"""A write-batching overlay over another store.

Reads look in the overlay first; writes and deletes stay in the overlay (a delete is kept as a
tombstone, ``None``) until :meth:`flush`, which hands every touched key once to the backing
store's ``write_many`` (one RocksDB ``WriteBatch`` for :class:`RocksDictStore`). A key known
to be absent from the backing store (a read found nothing, or it came by :meth:`insert`) that
is deleted again before the flush is not written at all: most of a batch's index entries
(buffered events released, deadlines of groups that closed) live and die within it, and each
delete would otherwise cost a changelog record and a RocksDB tombstone. ``scan`` merges
the overlay and the backing store in key order, the overlay winning and tombstones hiding keys.

The overlay's key order is kept lazily and per first key byte (the engine's record type): new
keys wait in a list of their bucket and are merged into that bucket's sorted list at the next
scan that reaches the bucket (one C-level sort when many are waiting). A batch writes far more
often than it scans, and its scans read one index each (buffer, deadlines, retention), so the
keys of the other record types (duplicate index, outbox, groups) are never sorted for them.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from streams.state.base import KeyValueStore


class BatchingStore(KeyValueStore):
    __slots__ = ("_absent", "_backing", "_gone", "_new", "_overlay", "_sorted")

    def __init__(self, backing: KeyValueStore) -> None:
        self._backing = backing
        self._overlay: dict[bytes, bytes | None] = {}
        # By first key byte (``b""`` for the empty key): overlay keys in order, except those
        # still waiting in ``_new``.
        self._sorted: dict[bytes, list[bytes]] = {}
        self._new: dict[bytes, list[bytes]] = {}
        # Keys the backing store does not hold: their tombstones need not be written.
        self._absent: set[bytes] = set()
        # Deleted keys of ``_absent`` (maybe put again since): dropped from the flush if so.
        self._gone: list[bytes] = []

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
        value = self._backing.get(key)
        if value is None:
            self._absent.add(key)
        return value

    def insert(self, key: bytes, value: bytes) -> None:
        if key not in self._overlay:  # else the overlay's view, not the backing's, was absent
            self._absent.add(key)
        self.put(key, value)

    def put(self, key: bytes, value: bytes) -> None:
        overlay = self._overlay
        if key not in overlay:
            bucket = key[:1]
            waiting = self._new.get(bucket)
            if waiting is None:
                self._new[bucket] = [key]
            else:
                waiting.append(key)
        overlay[key] = value

    def delete(self, key: bytes) -> None:
        overlay = self._overlay
        if key not in overlay:
            bucket = key[:1]
            waiting = self._new.get(bucket)
            if waiting is None:
                self._new[bucket] = [key]
            else:
                waiting.append(key)
        if key in self._absent:
            self._gone.append(key)  # born and gone in this batch: nothing to write
        overlay[key] = None

    def _bucket(self, bucket: bytes) -> list[bytes]:
        """The sorted overlay keys of one bucket, with its waiting keys merged in."""
        keys = self._sorted.get(bucket)
        waiting = self._new.pop(bucket, None)
        if waiting is not None:
            if keys is None:
                keys = sorted(waiting)
            elif len(waiting) * 8 > len(keys):
                keys += waiting
                keys.sort()
            else:
                for key in waiting:
                    insort(keys, key)
            self._sorted[bucket] = keys
        return keys if keys is not None else []

    def _keys_between(self, start: bytes, end: bytes) -> list[bytes]:
        """A copy of the overlay keys in ``[start, end)``, in order (tombstones included)."""
        if not end > start:
            return []
        first, last = start[:1], end[:1]
        if first == last:  # the usual case: a range within one record type
            keys = self._bucket(first)
            return keys[bisect_left(keys, start) : bisect_left(keys, end)]
        found: list[bytes] = []
        buckets = {*self._sorted, *self._new}
        for bucket in sorted(b for b in buckets if first <= b <= last):
            keys = self._bucket(bucket)
            found += keys[bisect_left(keys, start) : bisect_left(keys, end)]
        return found

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

    def first(self, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
        # The engine's timer checks call this per event: no merge generator, and the backing
        # store is read only below the overlay's first live key.
        overlay = self._overlay
        mine: tuple[bytes, bytes] | None = None
        if not end > start:
            return None
        first = start[:1]
        if first == end[:1]:
            keys = self._bucket(first)
            for i in range(bisect_left(keys, start), len(keys)):
                key = keys[i]
                if key >= end:
                    break
                value = overlay.get(key)
                if value is not None:
                    mine = key, value
                    break
        else:
            for key in self._keys_between(start, end):
                value = overlay[key]
                if value is not None:
                    mine = key, value
                    break
        # A backing key below ``mine`` that the overlay holds is a tombstone: skip it.
        backing, bound = self._backing, end if mine is None else mine[0]
        item = backing.first(start, bound)
        while item is not None and item[0] in overlay:
            item = backing.first(item[0] + b"\x00", bound)  # the next key after it
        return item if item is not None else mine

    def flush(self) -> int:
        """Write every touched key once to the backing store; return how many."""
        if not self._overlay:
            return 0
        overlay = self._overlay
        for key in self._gone:
            if key in overlay and overlay[key] is None:
                del overlay[key]
        changes = list(overlay.items())
        if changes:
            self._backing.write_many(changes)
        self.discard()
        return len(changes)

    def discard(self) -> None:
        """Forget unflushed writes (e.g. after a failed batch, before reprocessing it)."""
        self._overlay = {}
        self._sorted = {}
        self._new = {}
        self._absent = set()
        self._gone = []

"""One partition's state changes for one Kafka transaction, after quix-streams' PartitionTransaction.

The engine reads and writes a partition's state through a :class:`PartitionTransaction`, whose
status moves one way: ``started`` (reads and writes go to an overlay over the partition's
store), ``prepared`` (the changes are final, and went to the state changelog inside the Kafka
transaction that also carries the batch's outputs), ``committed`` (after that Kafka transaction
committed: the changes and the partition's new changelog position, in its bookkeeping, were
written to RocksDB in one ``WriteBatch``), or ``failed`` (the Kafka transaction aborted, or a step raised: the
changes are dropped). Any other move raises :class:`TransactionStateError`. So RocksDB never
holds a change the changelog lost with an aborted transaction, the changelog never holds part
of a batch, and a read can never miss a staged write (a prepared transaction is not read).

The overlay: reads look in it first; writes and deletes stay in it (a delete is kept as a
tombstone, ``None``) until :meth:`PartitionTransaction.prepare`, which takes every touched key
once. A key known to be absent from the store (a read found nothing, or it came by
:meth:`insert`) that is deleted again before then is not written at all: most of a batch's
index entries (buffered events released, deadlines of groups that closed) live and die within
it, and each delete would otherwise cost a changelog record and a RocksDB tombstone. ``scan``
merges the overlay and the store in key order, the overlay winning and tombstones hiding keys.

The overlay's key order is kept lazily and per first key byte (the engine's record type): new
keys wait in a list of their bucket and are merged into that bucket's sorted list at the next
scan that reaches the bucket (one C-level sort when many are waiting). A batch writes far more
often than it scans, and its scans read one index each (buffer, deadlines, retention), so the
keys of the other record types (duplicate index, outbox, groups) are never sorted for them.

A transaction with no changelog (tests, benches, the per-record attempts of an isolated engine
call) may also :meth:`flush`: write its changes to the store and go on, still ``started``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Literal

from streams.state.base import KeyValueStore
from streams.state.changelog import position_entry
from streams.state.exceptions import TransactionStateError

# (partition, changes: key and value or None for a tombstone), one call per prepared transaction
ChangelogSend = Callable[[int, Sequence[tuple[bytes, bytes | None]]], None]

Status = Literal["started", "prepared", "committed", "failed"]

# The status as a small int: the overlay's hot path tests it on every read and write.
_STARTED: Final = 0
_PREPARED: Final = 1
_COMMITTED: Final = 2
_FAILED: Final = 3
_NAMES: Final[tuple[Status, ...]] = ("started", "prepared", "committed", "failed")


class PartitionTransaction(KeyValueStore):
    __slots__ = (
        "_absent",
        "_changelog",
        "_gone",
        "_new",
        "_overlay",
        "_partition",
        "_prepared",
        "_sorted",
        "_status",
        "_store",
    )

    def __init__(
        self, store: KeyValueStore, partition: int = 0, changelog: ChangelogSend | None = None
    ) -> None:
        self._store = store
        self._partition = partition
        self._changelog = changelog
        self._status = _STARTED
        # The changes taken at prepare(), written by commit().
        self._prepared: list[tuple[bytes, bytes | None]] = []
        self._overlay: dict[bytes, bytes | None] = {}
        # By first key byte (``b""`` for the empty key): overlay keys in order, except those
        # still waiting in ``_new``.
        self._sorted: dict[bytes, list[bytes]] = {}
        self._new: dict[bytes, list[bytes]] = {}
        # Keys the store does not hold: their tombstones need not be written.
        self._absent: set[bytes] = set()
        # Deleted keys of ``_absent`` (maybe put again since): dropped from the flush if so.
        self._gone: list[bytes] = []

    @property
    def store(self) -> KeyValueStore:
        """The partition's store the transaction reads through and commits to."""
        return self._store

    @property
    def partition(self) -> int:
        return self._partition

    @property
    def status(self) -> Status:
        return _NAMES[self._status]

    @property
    def pending(self) -> int:
        """How many keys the transaction would write now."""
        return len(self._overlay)

    def _refuse(self, action: str) -> None:
        raise TransactionStateError(
            f"partition {self._partition}: cannot {action} a {_NAMES[self._status]} transaction"
        )

    def get(self, key: bytes) -> bytes | None:
        if self._status:
            self._refuse("read")
        overlay = self._overlay
        if key in overlay:
            return overlay[key]
        value = self._store.get(key)
        if value is None:
            self._absent.add(key)
        return value

    def insert(self, key: bytes, value: bytes) -> None:
        if self._status:
            self._refuse("write")
        if key not in self._overlay:  # else the overlay's view, not the store's, was absent
            self._absent.add(key)
        self.put(key, value)

    def put(self, key: bytes, value: bytes) -> None:
        if self._status:
            self._refuse("write")
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
        if self._status:
            self._refuse("write")
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
        if self._status:
            self._refuse("read")
        return self._merged(start, end)

    def _merged(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        overlay = self._overlay
        mine = iter(self._keys_between(start, end))
        theirs = self._store.scan(start, end)
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
        # The engine's timer checks call this per event: no merge generator, and the
        # store is read only below the overlay's first live key.
        if self._status:
            self._refuse("read")
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
        # A store key below ``mine`` that the overlay holds is a tombstone: skip it.
        store, bound = self._store, end if mine is None else mine[0]
        item = store.first(start, bound)
        while item is not None and item[0] in overlay:
            item = store.first(item[0] + b"\x00", bound)  # the next key after it
        return item if item is not None else mine

    # ------------------------------------------------------------------ the status

    def _changes(self) -> list[tuple[bytes, bytes | None]]:
        """Every touched key once, born-and-gone keys left out; the overlay is emptied."""
        overlay = self._overlay
        for key in self._gone:
            if key in overlay and overlay[key] is None:
                del overlay[key]
        changes = list(overlay.items())
        self._clear()
        return changes

    def rollback(self) -> None:
        """Forget the writes so far and go on, still started (an engine call that failed is
        replayed one record at a time)."""
        if self._status:
            self._refuse("roll back")
        self._clear()

    def prepare(self) -> int:
        """started -> prepared: the changes are final and go to the changelog, if the
        transaction has one. Returns how many keys changed."""
        if self._status:
            self._refuse("prepare")
        changes = self._prepared = self._changes()
        send = self._changelog
        if send is not None and changes:
            try:
                send(self._partition, changes)
            except BaseException:
                self.fail()
                raise
        self._status = _PREPARED
        return len(changes)

    def commit(self, position: int | None = None) -> int:
        """prepared -> committed, once the Kafka transaction that carried the changes has
        committed: the changes, and ``position`` (where the partition's state now stands in
        its changelog; None when nothing reached it), in one write to the store."""
        if self._status != _PREPARED:
            self._refuse("commit")
        changes = self._prepared
        self._prepared = []
        try:
            if position is not None:
                self._store.write_with_bookkeeping(changes, [position_entry(position)])
            elif changes:
                self._store.write_many(changes)
        except BaseException:
            self._status = _FAILED
            raise
        self._status = _COMMITTED
        return len(changes)

    def fail(self) -> None:
        """started or prepared -> failed: the Kafka transaction aborted (or a step raised);
        nothing of the transaction reaches the store."""
        if self._status == _COMMITTED:
            self._refuse("fail")
        self._status = _FAILED
        self._prepared = []
        self._clear()

    def flush(self) -> int:
        """Write the changes so far to the store and go on, still started; only for a
        transaction with no changelog, which has nothing to wait for. Returns how many."""
        if self._changelog is not None:
            raise TransactionStateError(
                f"partition {self._partition}: a transaction with a changelog is prepared, "
                "then committed once its Kafka transaction has"
            )
        if self._status:
            self._refuse("flush")
        changes = self._changes()
        if changes:
            self._store.write_many(changes)
        return len(changes)

    def _clear(self) -> None:
        self._overlay = {}
        self._sorted = {}
        self._new = {}
        self._absent = set()
        self._gone = []

"""Timers and deadlines: the deadline index of open groups and the retention index of purges.

Both indexes are keyed by time (:mod:`streams.engine.keys`), so the timers due before a time
are a range read from the index's start. This room keeps, for one call, where each index can
still hold an entry, so that reads skip what was already fired and deleted, and that the
per-event check costs nothing while no timer is due. What a due timer does (raise an
exception, forget ids) is the caller's business: this room only says which one is due.
"""

from __future__ import annotations

from streams.engine import keys
from streams.state.base import KeyValueStore


class Timers:
    """One call's cursors over the two timer indexes; created per call, like its session."""

    def __init__(self, store: KeyValueStore, swept: int | None) -> None:
        self.store = store
        # Lowest time that may still have a deadline / retention entry. Reading the indexes
        # from here, not from their first key, skips what was deleted (RocksDB tombstones,
        # overlay deletes) instead of stepping over it on every read. Nothing due is left
        # below ``swept`` (the watermark, unless the last sweep paused).
        self.floor_deadline: int | None = swept
        self.floor_retention: int | None = swept
        # Per index: no entry at or above its floor is earlier than this (None: unknown).
        # Lets the per-event timer check cost nothing while no timer is due, and read only
        # the index that may have one.
        self.next_deadline: int | None = None
        self.next_retention: int | None = None
        # The watermark the running sweep goes to: an index is read up to it at most.
        self.sweep_bound = 0
        # Deadline entries added (+1) or removed (-1) in this call: the open-groups count.
        self.open_delta = 0

    def none_due(self, before: int) -> bool:
        """Whether both indexes are known to hold nothing earlier than ``before``."""
        nd, nr = self.next_deadline, self.next_retention
        return nd is not None and nr is not None and before <= nd and before <= nr

    def next_due(self, before: int) -> tuple[bytes, bytes] | None:
        """The earliest timer entry (key, value) whose time is < ``before``, a deadline first
        on a tie; None when none is. The key's first byte says its index.

        An index is read only when its known lower bound is below ``before``; it is read up
        to the sweep's bound (``before`` is never above it), so the entry found is either due
        or the index's new lower bound."""
        nd, nr = self.next_deadline, self.next_retention
        upper = max(before, self.sweep_bound)
        bound = keys.time_bytes(upper)
        store = self.store
        deadline = purge = None
        if nd is None or nd < before:
            fd = self.floor_deadline
            d_start = keys.DEADLINE if fd is None else keys.DEADLINE + keys.time_bytes(fd)
            deadline = store.first(d_start, keys.DEADLINE + bound)
            nd = upper if deadline is None else keys.time_from(deadline[0][1:9])
            # Read from the floor up: nothing is below nd, which is the new floor.
            self.next_deadline = self.floor_deadline = nd
        if nr is None or nr < before:
            fr = self.floor_retention
            r_start = keys.RETENTION if fr is None else keys.RETENTION + keys.time_bytes(fr)
            purge = store.first(r_start, keys.RETENTION + bound)
            nr = upper if purge is None else keys.time_from(purge[0][1:9])
            self.next_retention = self.floor_retention = nr
        if nd < before and (nr >= before or nd <= nr):
            assert deadline is not None  # nd < before: just read
            self.floor_deadline = nd  # everything earlier has fired
            return deadline
        if nr < before:
            assert purge is not None
            self.floor_retention = nr
            return purge
        return None

    def move_deadline(self, gid: bytes, old: int | None, new: int | None) -> None:
        """Re-index a group's deadline from ``old`` to ``new`` (None: no deadline)."""
        if old is None:
            self.open_delta += 1
        elif new is None:
            self.open_delta -= 1
        store = self.store
        if old is not None:
            store.delete(keys.deadline_key(old, gid))
        if new is not None:
            # A group has one deadline entry, old's, deleted above: this one is new.
            store.insert(keys.deadline_key(new, gid), b"")
            if self.floor_deadline is not None and new < self.floor_deadline:
                self.floor_deadline = new
            if self.next_deadline is not None and new < self.next_deadline:
                self.next_deadline = new

    def put_retention(self, expiry: int, kind: bytes, payload: bytes,
                      value: bytes = b"") -> None:  # fmt: skip
        """Schedule a purge at ``expiry`` (what it forgets is in ``kind``, payload, value)."""
        self.store.put(keys.retention_key(expiry, kind, payload), value)
        if self.floor_retention is not None and expiry < self.floor_retention:
            self.floor_retention = expiry
        if self.next_retention is not None and expiry < self.next_retention:
            self.next_retention = expiry

    def cancel_retention(self, expiry: int, kind: bytes, payload: bytes) -> None:
        self.store.delete(keys.retention_key(expiry, kind, payload))

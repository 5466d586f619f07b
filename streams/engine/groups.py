"""Groups: the (reference, flow, currency) groups of a partition, read and written for one call.

A group is decoded once per call and kept here by id. Only the engine writes the store during
a call, and every change is saved through :meth:`Groups.save`, so what is kept stays what the
store holds; it is dropped with the call. Saving keeps the group's deadline index entry in step
(an open group waits for its counterpart until its earliest member's time plus the window).
"""

from __future__ import annotations

from streams.engine import codec, keys
from streams.engine.codec import Group
from streams.engine.config import MatchConfig
from streams.engine.timers import Timers
from streams.state.base import KeyValueStore, prefix_end


class Groups:
    def __init__(self, store: KeyValueStore, config: MatchConfig, timers: Timers) -> None:
        self.store = store
        self.match_window_ms = config.match_window_ms
        self.timers = timers
        self._cache: dict[bytes, Group | None] = {}  # by group id (None: absent)

    def load(self, gid: bytes) -> Group | None:
        """The group, decoded once per call: callers change it only to save it right after."""
        groups = self._cache
        if gid in groups:
            return groups[gid]
        raw = self.store.get(keys.group_key(gid))
        g = codec.decode_group(gid, raw) if raw is not None else None
        groups[gid] = g
        return g

    def save(self, g: Group) -> None:
        """Store ``g`` (or delete it when empty) and keep its deadline index entry in step."""
        empty = not g.payments and not g.ledgers
        wanted: int | None = None
        if not empty and g.exception_id is None:
            earliest = min(m[2] for m in (*g.payments, *g.ledgers))
            wanted = earliest + self.match_window_ms
        if wanted != g.deadline:
            self.timers.move_deadline(g.gid, g.deadline, wanted)
            g.deadline = wanted
        if empty:
            self.store.delete(keys.group_key(g.gid))
            self._cache[g.gid] = None
        else:
            self.store.put(keys.group_key(g.gid), codec.encode_group(g))
            self._cache[g.gid] = g

    def currency_partner(self, g: Group, reference: str) -> Group | None:
        """An open one-sided group of the same reference and flow, other side, other currency
        (the first in currency order)."""
        store = self.store
        prefix = keys.GROUP + g.gid[: 3 + len(reference.encode())]  # reference and flow
        own = keys.group_key(g.gid)
        end = prefix_end(prefix)
        # Most references have one group: two point reads show it, without a scan's iterators.
        if store.first(prefix, own) is None and store.first(own + b"\x00", end) is None:
            return None
        for key, raw in store.scan(prefix, end):
            gid = key[1:]
            if gid == g.gid:
                continue
            other = codec.decode_group(gid, raw)
            if other.exception_id is not None or (other.payments and other.ledgers):
                continue
            if bool(other.payments) != bool(g.payments):
                return other
        return None

"""Dedupe: the two ways an input is seen twice, and forgetting after retention.

* A Kafka redelivery: an offset at or below the highest applied offset of its side. It is
  skipped: its outputs went out with the state that marks it applied (one transaction).
* An upstream redelivery: an event id already in the duplicate index, keyed by (side, event
  id), holding the content hash of the first copy. The same hash is dropped, another hash is a
  DUPLICATE_CONFLICT. An id stays known until the retention purge of what it ended in (a match,
  an exception, a parked event) forgets it.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.contract.model import InputEvent
from streams.engine import keys
from streams.engine.codec import Meta
from streams.state.base import KeyValueStore


def is_redelivery(meta: Meta, side_code: int, offset: int) -> bool:
    return offset <= meta.offsets[side_code]


def mark_applied(meta: Meta, side_code: int, offset: int) -> None:
    meta.offsets[side_code] = offset


def known_hash(store: KeyValueStore, ukey: bytes) -> bytes | None:
    """The content hash the duplicate index holds under ``ukey`` (None: a new id)."""
    return store.get(ukey)


def remember(store: KeyValueStore, ukey: bytes, ev: InputEvent) -> None:
    store.put(ukey, ev.content_hash)


def forget(store: KeyValueStore, members: Iterable[tuple[int, str]]) -> None:
    """Forget ids, given as (side code, event id)."""
    for code, event_id in members:
        store.delete(keys.dedupe_key_code(code, event_id))

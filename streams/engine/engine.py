"""The matching engine: event-time ordered, deterministic, and safe to run at least once.

All state lives in a :class:`~streams.state.base.KeyValueStore`, one per input partition (key
layout in :mod:`streams.engine.keys`, values in :mod:`streams.engine.codec`). Processing one
input record:

1. An offset at or below the highest applied offset of its side is a Kafka redelivery: it is
   skipped. (The caller persists a call's state changes and sends its outputs atomically, so
   the outputs of a redelivered input were sent with the state that marks it applied.)
2. An event is checked against the duplicate index (drop, or DUPLICATE_CONFLICT), then either
   applied at once (already behind the watermark: late) or put in the event-time buffer.
3. Its side's greatest event time moves; the watermark (min over sides minus lateness) follows.
4. The sweep applies what the watermark passed, in event-time order: buffered events by
   (time, ledger before payment, offset), with group deadlines and retention purges at time T
   running after the events at T. Each index is read from its floor up to the watermark only.

The sweep takes one step per released event, fired deadline or purge. A call may bound its
steps: a released backlog then goes out over several calls, each with bounded state changes
and outputs, the sweep's place kept in the state (``Meta.swept``) between them.

An event its group cannot take (its side's sum would pass the contract's 2^63-1, or the group
would pass ``max_group_events``) is reported alone as AMOUNT_OVERFLOW or GROUP_LIMIT and not
applied, so no state value and no output grows without bound and no sum leaves Avro's long.

This class is the facade: each call runs in a :class:`~streams.engine.session.CallSession`
(which names the rooms that do the work), and the reads are in :mod:`streams.engine.read_views`.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.engine import read_views
from streams.engine.clock import WatermarkClock, load_meta
from streams.engine.config import MatchConfig
from streams.engine.outbox import EngineOutput
from streams.engine.read_views import EngineSnapshot, GroupView
from streams.engine.session import CallSession, Item
from streams.state.base import KeyValueStore


class MatchingEngine:
    """Pure matching logic; every call names the partition's store explicitly.

    The engine keeps only its settings: a call's cursors live in its session, dropped when
    the call returns.
    """

    def __init__(self, config: MatchConfig | None = None) -> None:
        self.config = config if config is not None else MatchConfig()
        self._clock = WatermarkClock(self.config.allowed_lateness_ms)

    def on_item(self, store: KeyValueStore, partition: int, item: Item) -> EngineOutput:
        return self.on_batch(store, partition, (item,))

    def on_batch(
        self,
        store: KeyValueStore,
        partition: int,
        items: Iterable[Item],
        budget: int | None = None,
    ) -> EngineOutput:
        """Process items in order, with the same final state and the same set of outputs as
        ``on_item`` on each in turn. The watermark sweep is deferred to the end of the call
        (or to just before a late event or a known id, which must see it done).

        ``budget`` bounds the sweep's steps in this call. When it runs out, the call returns
        with ``paused`` set and ``consumed`` < len(items) or a sweep left to finish: call again
        with the items not consumed (or none) to go on. Without a budget a call never pauses.
        """
        meta = load_meta(store, partition)
        return CallSession(store, meta, self.config, self._clock, budget).run(items)

    def pending(self, store: KeyValueStore, partition: int) -> bool:
        """Whether a sweep paused on its budget is left to finish (call ``on_batch`` again)."""
        meta = load_meta(store, partition)
        return meta.swept != meta.watermark

    def lookup(self, store: KeyValueStore, reference: str) -> list[GroupView]:
        """Open and raised groups of one reference, by (flow, currency)."""
        return read_views.lookup(store, reference)

    def snapshot(self, store: KeyValueStore, partition: int) -> EngineSnapshot:
        return read_views.snapshot(store, partition)

"""One engine call: its items in order, then the event-time sweep, within a step budget.

A :class:`CallSession` is created by ``MatchingEngine.on_batch`` and dropped when the call
returns. It holds everything that lives for one call only (the cursors over the timer indexes,
the groups and buffered events already decoded, the step budget, the outbox), so the engine
object itself keeps nothing between calls but its settings. The rooms it drives:

* :mod:`~streams.engine.clock`: the watermark; :mod:`~streams.engine.dedupe`: inputs seen
  twice; :mod:`~streams.engine.timers`: deadlines and purges due;
  :mod:`~streams.engine.matching` (with :mod:`~streams.engine.groups` and
  :mod:`~streams.engine.closing`): events applied to their groups;
  :mod:`~streams.engine.raising`: exceptions raised, resolved and forgotten;
  :mod:`~streams.engine.outbox`: what the call emits.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from streams.contract.model import Consumed, Heartbeat, InputEvent
from streams.engine import codec, dedupe, keys
from streams.engine.clock import WatermarkClock
from streams.engine.codec import Buffered, Meta
from streams.engine.config import MatchConfig
from streams.engine.exceptions import CorruptStateError, InvalidInputError
from streams.engine.groups import Groups
from streams.engine.matching import Matcher
from streams.engine.outbox import EngineOutput
from streams.engine.raising import Raiser, conflict_exception
from streams.engine.timers import Timers
from streams.state.base import KeyValueStore, prefix_end

Item = InputEvent | Heartbeat | Consumed

_DEADLINE_END = prefix_end(keys.DEADLINE)
# Buffered events read per scan of a sweep: a released backlog is never in memory whole.
_SWEEP_PAGE = 1024


class _Paused(Exception):  # noqa: N818 - control flow within the session, never raised out
    """The call's step budget ran out: the sweep stops where it is and resumes next call."""


class CallSession:
    """The state of one call on one partition's store; used once, then dropped."""

    def __init__(
        self,
        store: KeyValueStore,
        meta: Meta,
        config: MatchConfig,
        clock: WatermarkClock,
        budget: int | None,
    ) -> None:
        self.store = store
        self.meta = meta
        self.clock = clock
        self.out = EngineOutput()
        self.budget = budget  # sweep steps left in this call (None: unbounded)
        # The watermark the buffer was last swept to; within a call the sweep is deferred to
        # the end (or to just before a late event or a known id, which must see it done).
        # Nothing due is left below meta.swept (the watermark, unless the last sweep paused).
        self.swept_to = meta.swept
        self.timers_dirty = False  # a late event may have scheduled timers already due
        # The events this call put in the buffer, by buffer key, so the sweep need not decode
        # what it just encoded.
        self.buffered: dict[bytes, Buffered | InputEvent] = {}
        self.timers = Timers(store, meta.swept)
        self.groups = Groups(store, config, self.timers)
        self.raiser = Raiser(store, config, self.groups, self.timers, self.out)
        self.matcher = Matcher(config, self.groups, self.raiser, self.timers, self.out)

    def run(self, items: Iterable[Item]) -> EngineOutput:
        """Process ``items`` in order, then sweep; save the meta record if it changed."""
        store, meta, out = self.store, self.meta, self.out
        before = codec.encode_meta(meta)
        if meta.open_groups is None:  # state from before the count: count once
            meta.open_groups = sum(1 for _ in store.scan(keys.DEADLINE, _DEADLINE_END))
        try:
            for item in items:
                if not self._process(item):
                    break
                out.consumed += 1
            else:
                if self._sweep_pending():
                    self._sweep()
        finally:
            # Items processed before a failure stay applied, so their offsets must be kept.
            out.paused = self._sweep_pending()
            meta.swept = self._resume_point() if out.paused else meta.watermark
            meta.open_groups += self.timers.open_delta
            after = codec.encode_meta(meta)
            if after != before:
                store.put(keys.META, after)
        return out

    # ------------------------------------------------------------------ per item

    def _process(self, item: Item) -> bool:
        """Handle one input; False when it must wait for a sweep that paused on the budget
        (nothing of it is applied then)."""
        meta, out = self.meta, self.out
        code = keys.SIDE_CODE[item.side]
        if isinstance(item, InputEvent):
            _validate(item)
        if dedupe.is_redelivery(meta, code, item.offset):
            out.replays += 1
            return True
        if isinstance(item, Consumed):
            dedupe.mark_applied(meta, code, item.offset)
            return True
        if isinstance(item, InputEvent):
            ukey = keys.dedupe_key(item.side, item.event_id)
            known = dedupe.known_hash(self.store, ukey)
            late = self.clock.is_late(meta, item.event_time_ms)
            if (known is not None or late) and self._sweep_pending():
                # What on_item would have released before it: a late event comes after what
                # the watermark passed, and a pending retention purge may forget a known id.
                if not self._sweep():
                    return False
                known = dedupe.known_hash(self.store, ukey)
            out.events += 1
            self._on_event(item, ukey, known, late)
        else:
            out.heartbeats += 1
        dedupe.mark_applied(meta, code, item.offset)
        self.clock.observe(meta, code, item.event_time_ms)
        return True

    def _on_event(self, ev: InputEvent, ukey: bytes, known: bytes | None, late: bool) -> None:
        out = self.out
        if known is not None:
            if known == ev.content_hash:
                out.duplicates_dropped += 1
            else:
                out.conflicts += 1
                out.exceptions.append(conflict_exception(ev, known))
            return
        dedupe.remember(self.store, ukey, ev)
        if late:
            out.late_events += 1  # the sweep before it ran in _process
            self.matcher.apply(ev)
            self.timers_dirty = True
        else:
            key = keys.buffer_key(ev.event_time_ms, ev.side, ev.offset)
            self.store.insert(key, codec.encode_buffered(ev))  # one key per input offset
            self.buffered[key] = ev
            out.buffered += 1

    # ------------------------------------------------------------------ event-time sweep

    def _sweep_pending(self) -> bool:
        return self.meta.watermark != self.swept_to or self.timers_dirty

    def _resume_point(self) -> int | None:
        """Where a paused sweep resumes: below every index's floor (nothing due below it)."""
        timers = self.timers
        floors = (self.swept_to, timers.floor_deadline, timers.floor_retention)
        if self.meta.watermark is None or None in floors:
            return None  # an index not read yet: resume from its start
        return min(t for t in floors if t is not None)

    def _spend(self) -> None:
        """Take one sweep step from the call's budget; pause the sweep when none is left."""
        budget = self.budget
        if budget is not None:
            if budget <= 0:
                raise _Paused
            self.budget = budget - 1

    def _sweep(self) -> bool:
        """Apply what the watermark passed, until the call's step budget runs out (then return
        False: what is left stays in the indexes, above their floors). Events are buffered only
        at or after the watermark of their arrival, so the buffer holds nothing due below the
        last sweep's place."""
        target = self.meta.watermark
        if target is None:
            return True
        store, out = self.store, self.out
        self.timers.sweep_bound = target
        end = keys.BUFFER + keys.time_bytes(target)
        pending = self.buffered
        try:
            while True:
                floor = self.swept_to
                start = keys.BUFFER if floor is None else keys.BUFFER + keys.time_bytes(floor)
                page = list(islice(store.scan(start, end), _SWEEP_PAGE))
                for key, raw in page:
                    ev = pending.get(key)
                    if ev is None:
                        ev = codec.decode_buffered(raw)
                    self._run_timers(ev.event_time_ms)
                    self._spend()
                    pending.pop(key, None)
                    store.delete(key)
                    out.released += 1
                    self.matcher.apply(ev)
                    self.swept_to = ev.event_time_ms
                if len(page) < _SWEEP_PAGE:
                    break
            self._run_timers(target)
        except _Paused:
            return False
        self.swept_to = target
        self.timers_dirty = False
        return True

    def _run_timers(self, before: int) -> None:
        """Fire deadlines and retention purges whose time is < ``before``, in time order (a
        deadline first on a tie). Either may schedule the other, so both are read again."""
        timers = self.timers
        if timers.none_due(before):
            return
        while True:
            due = timers.next_due(before)
            if due is None:
                return
            key, raw = due
            self._spend()
            if key[:1] == keys.DEADLINE:
                self.raiser.expire(key[9:], keys.time_from(key[1:9]))
            else:
                self.store.delete(key)
                self._purge(key[9:10], key[10:], raw)
                self.out.purged += 1

    def _purge(self, kind: bytes, payload: bytes, raw: bytes) -> None:
        if kind == keys.PURGE_MATCH:
            dedupe.forget(self.store, codec.decode_purge_members(raw))
        elif kind == keys.PURGE_OUTBOX:  # written by versions with an outbox
            self.store.delete(keys.OUTBOX + payload)
        elif kind == keys.PURGE_EXCEPTION:
            self.raiser.forget(payload.decode())
        else:
            raise CorruptStateError(f"unknown retention entry kind {kind!r}")


def _validate(ev: InputEvent) -> None:
    if type(ev.amount_minor) is not int or ev.amount_minor <= 0:
        raise InvalidInputError(f"event {ev.event_id!r}: amount must be a positive int")
    if type(ev.event_time_ms) is not int or type(ev.offset) is not int or ev.offset < 0:
        raise InvalidInputError(f"event {ev.event_id!r}: event time and offset must be ints")
    if not isinstance(ev.content_hash, bytes) or not ev.content_hash:
        raise InvalidInputError(f"event {ev.event_id!r}: content_hash must be non-empty bytes")

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
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from streams.contract.model import (
    Consumed,
    ExceptionKind,
    ExceptionRecord,
    ExceptionStatus,
    Heartbeat,
    InputEvent,
    MatchRecord,
    Rule,
    Side,
)
from streams.engine import codec, keys
from streams.engine.closing import find_pair, find_pair_with_last
from streams.engine.codec import Buffered, Group, Member, Meta
from streams.engine.config import MAX_SUM, MatchConfig
from streams.engine.exception_details import (
    conflict_detail,
    parked_detail,
    resolved_detail,
    timeout_detail,
)
from streams.engine.exceptions import CorruptStateError, InvalidInputError, PartitionMismatchError
from streams.engine.ids import conflict_id, exception_id, match_id
from streams.engine.outbox import EngineOutput
from streams.engine.read_views import (
    BufferedView,
    EngineSnapshot,
    GroupStatus,
    GroupView,
    MemberView,
)
from streams.state.base import KeyValueStore, prefix_end

Item = InputEvent | Heartbeat | Consumed

_PAY = keys.SIDE_CODE[Side.PAYMENT]
_LED = keys.SIDE_CODE[Side.LEDGER]
_BUFFER_END = prefix_end(keys.BUFFER)
_GROUP_END = prefix_end(keys.GROUP)
_DEADLINE_END = prefix_end(keys.DEADLINE)
_EXCEPTION_END = prefix_end(keys.EXCEPTION)
# Buffered events read per scan of a sweep: a released backlog is never in memory whole.
_SWEEP_PAGE = 1024


class _Paused(Exception):  # noqa: N818 - control flow within the engine, never raised out
    """The call's step budget ran out: the sweep stops where it is and resumes next call."""


class MatchingEngine:
    """Pure matching logic; every call names the partition's store explicitly.

    One call at a time per instance (the floors below are per call), which is how a single
    Faust agent or a test drives it.
    """

    def __init__(self, config: MatchConfig | None = None) -> None:
        self.config = config if config is not None else MatchConfig()
        # Lowest time that may still have a deadline / retention entry. Reading the indexes
        # from here, not from their first key, skips what was deleted (RocksDB tombstones,
        # overlay deletes) instead of stepping over it on every read.
        self._floor_deadline: int | None = None
        self._floor_retention: int | None = None
        # Per index, within a call: no deadline / retention entry at or above its floor is
        # earlier than this (None: unknown). Lets the per-event timer check cost nothing while
        # no timer is due, and read only the index that may have one.
        self._next_deadline: int | None = None
        self._next_retention: int | None = None
        self._sweep_bound = 0
        # Within a call: the events this call put in the buffer, by buffer key, so the sweep
        # need not decode what it just encoded; and the groups read or written, by group id
        # (None: absent), so a group is decoded once per call. Only the engine writes the
        # store during a call, and every change is saved through _save_group, so both stay
        # what the store holds; both are dropped when the call ends.
        self._buffered: dict[bytes, Buffered | InputEvent] = {}
        self._groups: dict[bytes, Group | None] = {}
        # The watermark the buffer was last swept to; within a batch the sweep is deferred to
        # the end (or to just before a late event or a known id, which must see it done).
        self._swept_to: int | None = None
        self._timers_dirty = False  # a late event may have scheduled timers already due
        self._budget: int | None = None  # sweep steps left in this call (None: unbounded)
        self._open_delta = 0  # groups given (+1) or relieved of (-1) a deadline in this call

    # ------------------------------------------------------------------ public API

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
        out = EngineOutput()
        meta = self._load_meta(store, partition)
        before = codec.encode_meta(meta)
        if meta.open_groups is None:  # state from before the count: count once
            meta.open_groups = sum(1 for _ in store.scan(keys.DEADLINE, _DEADLINE_END))
        self._open_delta = 0
        # Nothing due is left below meta.swept (the watermark, unless the last sweep paused).
        self._floor_deadline = self._floor_retention = self._swept_to = meta.swept
        self._next_deadline = self._next_retention = None
        self._timers_dirty = False
        self._budget = budget
        self._buffered = {}
        self._groups = {}
        try:
            for item in items:
                if not self._process(store, meta, item, out):
                    break
                out.consumed += 1
            else:
                if self._sweep_pending(meta):
                    self._sweep(store, meta, out)
        finally:
            # Items processed before a failure stay applied, so their offsets must be kept.
            out.paused = self._sweep_pending(meta)
            meta.swept = self._resume_point(meta) if out.paused else meta.watermark
            meta.open_groups += self._open_delta
            after = codec.encode_meta(meta)
            if after != before:
                store.put(keys.META, after)
            self._buffered = {}
            self._groups = {}
            self._budget = None
        return out

    def pending(self, store: KeyValueStore, partition: int) -> bool:
        """Whether a sweep paused on its budget is left to finish (call ``on_batch`` again)."""
        meta = self._load_meta(store, partition)
        return meta.swept != meta.watermark

    def lookup(self, store: KeyValueStore, reference: str) -> list[GroupView]:
        """Open and raised groups of one reference, by (flow, currency)."""
        prefix = keys.GROUP + keys.reference_prefix(reference)
        return [
            _group_view(codec.decode_group(k[1:], v))
            for k, v in store.scan(prefix, prefix_end(prefix))
        ]

    def snapshot(self, store: KeyValueStore, partition: int) -> EngineSnapshot:
        raw = store.get(keys.META)
        meta = codec.decode_meta(raw) if raw is not None else None
        if meta is not None and meta.partition != partition:
            raise PartitionMismatchError(f"store holds partition {meta.partition}, not {partition}")
        buffered = tuple(
            _buffered_view(codec.decode_buffered(v))
            for _, v in store.scan(keys.BUFFER, _BUFFER_END)
        )
        groups = tuple(
            _group_view(codec.decode_group(k[1:], v)) for k, v in store.scan(keys.GROUP, _GROUP_END)
        )
        raised = tuple(
            sorted(
                (
                    codec.decode_exception(v)[0]
                    for _, v in store.scan(keys.EXCEPTION, _EXCEPTION_END)
                ),
                key=lambda r: r.exception_id,
            )
        )
        return EngineSnapshot(
            partition=meta.partition if meta else None,
            watermark_ms=meta.watermark if meta else None,
            payment_max_ms=meta.max_time[_PAY] if meta else None,
            ledger_max_ms=meta.max_time[_LED] if meta else None,
            payment_offset=meta.offsets[_PAY] if meta else -1,
            ledger_offset=meta.offsets[_LED] if meta else -1,
            buffered=buffered,
            groups=groups,
            raised_exceptions=raised,
        )

    # ------------------------------------------------------------------ per item

    def _load_meta(self, store: KeyValueStore, partition: int) -> Meta:
        raw = store.get(keys.META)
        if raw is None:
            return Meta(partition, [None, None], None, [-1, -1], None, 0)
        meta = codec.decode_meta(raw)
        if meta.partition != partition:
            raise PartitionMismatchError(
                f"store holds partition {meta.partition}, called for partition {partition}"
            )
        return meta

    def _process(self, store: KeyValueStore, meta: Meta, item: Item, out: EngineOutput) -> bool:
        """Handle one input; False when it must wait for a sweep that paused on the budget
        (nothing of it is applied then)."""
        code = keys.SIDE_CODE[item.side]
        if isinstance(item, InputEvent):
            _validate(item)
        if item.offset <= meta.offsets[code]:
            out.replays += 1
            return True
        if isinstance(item, Consumed):
            meta.offsets[code] = item.offset
            return True
        if isinstance(item, InputEvent):
            ukey = keys.dedupe_key(item.side, item.event_id)
            known = store.get(ukey)
            late = meta.watermark is not None and item.event_time_ms < meta.watermark
            if (known is not None or late) and self._sweep_pending(meta):
                # What on_item would have released before it: a late event comes after what
                # the watermark passed, and a pending retention purge may forget a known id.
                if not self._sweep(store, meta, out):
                    return False
                known = store.get(ukey)
            out.events += 1
            self._on_event(store, meta, item, ukey, known, late, out)
        else:
            out.heartbeats += 1
        meta.offsets[code] = item.offset
        seen = meta.max_time[code]
        if seen is None or item.event_time_ms > seen:
            meta.max_time[code] = item.event_time_ms
        self._advance_watermark(meta)
        return True

    def _sweep_pending(self, meta: Meta) -> bool:
        return meta.watermark != self._swept_to or self._timers_dirty

    def _resume_point(self, meta: Meta) -> int | None:
        """Where a paused sweep resumes: below every index's floor (nothing due below it)."""
        floors = (self._swept_to, self._floor_deadline, self._floor_retention)
        if meta.watermark is None or None in floors:
            return None  # an index not read yet: resume from its start
        return min(t for t in floors if t is not None)

    def _spend(self) -> None:
        """Take one sweep step from the call's budget; pause the sweep when none is left."""
        budget = self._budget
        if budget is not None:
            if budget <= 0:
                raise _Paused
            self._budget = budget - 1

    def _advance_watermark(self, meta: Meta) -> None:
        pay, led = meta.max_time[_PAY], meta.max_time[_LED]
        if pay is None or led is None:
            return
        candidate = min(pay, led) - self.config.allowed_lateness_ms
        if meta.watermark is None or candidate > meta.watermark:
            meta.watermark = candidate

    def _on_event(
        self,
        store: KeyValueStore,
        meta: Meta,
        ev: InputEvent,
        ukey: bytes,
        known: bytes | None,
        late: bool,
        out: EngineOutput,
    ) -> None:
        if known is not None:
            if known == ev.content_hash:
                out.duplicates_dropped += 1
            else:
                out.conflicts += 1
                out.exceptions.append(self._conflict(ev, known))
            return
        store.put(ukey, ev.content_hash)
        if late:
            out.late_events += 1  # the sweep before it ran in _process
            self._apply(store, ev, out)
            self._timers_dirty = True
        else:
            key = keys.buffer_key(ev.event_time_ms, ev.side, ev.offset)
            store.insert(key, codec.encode_buffered(ev))  # one key per input offset
            self._buffered[key] = ev
            out.buffered += 1

    def _conflict(self, ev: InputEvent, known: bytes) -> ExceptionRecord:
        return _one_event_exception(
            ev,
            ExceptionKind.DUPLICATE_CONFLICT,
            conflict_id(ev.side, ev.event_id, known, ev.content_hash),
            conflict_detail(
                side=ev.side,
                event_id=ev.event_id,
                reference=ev.reference,
                amount=ev.amount_minor,
                currency=ev.currency,
                old=known,
                new=ev.content_hash,
            ),
        )

    # ------------------------------------------------------------------ event-time sweep

    def _sweep(self, store: KeyValueStore, meta: Meta, out: EngineOutput) -> bool:
        """Apply what the watermark passed, until the call's step budget runs out (then return
        False: what is left stays in the indexes, above their floors). Events are buffered only
        at or after the watermark of their arrival, so the buffer holds nothing due below the
        last sweep's place."""
        target = meta.watermark
        if target is None:
            return True
        self._sweep_bound = target
        end = keys.BUFFER + keys.time_bytes(target)
        pending = self._buffered
        try:
            while True:
                floor = self._swept_to
                start = keys.BUFFER if floor is None else keys.BUFFER + keys.time_bytes(floor)
                page = list(islice(store.scan(start, end), _SWEEP_PAGE))
                for key, raw in page:
                    ev = pending.get(key)
                    if ev is None:
                        ev = codec.decode_buffered(raw)
                    self._run_timers(store, ev.event_time_ms, out)
                    self._spend()
                    pending.pop(key, None)
                    store.delete(key)
                    out.released += 1
                    self._apply(store, ev, out)
                    self._swept_to = ev.event_time_ms
                if len(page) < _SWEEP_PAGE:
                    break
            self._run_timers(store, target, out)
        except _Paused:
            return False
        self._swept_to = target
        self._timers_dirty = False
        return True

    def _run_timers(self, store: KeyValueStore, before: int, out: EngineOutput) -> None:
        """Fire deadlines and retention purges whose time is < ``before``, in time order (a
        deadline first on a tie). Either may schedule the other, so both are read again.

        An index is read only when its known lower bound is below ``before``; it is read up
        to the sweep's bound (``before`` is never above it), so the entry found is either due
        or the index's new lower bound."""
        nd, nr = self._next_deadline, self._next_retention
        if nd is not None and nr is not None and before <= nd and before <= nr:
            return
        upper = max(before, self._sweep_bound)
        bound = keys.time_bytes(upper)
        while True:
            deadline = purge = None
            if nd is None or nd < before:
                fd = self._floor_deadline
                d_start = keys.DEADLINE if fd is None else keys.DEADLINE + keys.time_bytes(fd)
                deadline = store.first(d_start, keys.DEADLINE + bound)
                nd = upper if deadline is None else keys.time_from(deadline[0][1:9])
                # Read from the floor up: nothing is below nd, which is the new floor.
                self._next_deadline = self._floor_deadline = nd
            if nr is None or nr < before:
                fr = self._floor_retention
                r_start = keys.RETENTION if fr is None else keys.RETENTION + keys.time_bytes(fr)
                purge = store.first(r_start, keys.RETENTION + bound)
                nr = upper if purge is None else keys.time_from(purge[0][1:9])
                self._next_retention = self._floor_retention = nr
            if nd < before and (nr >= before or nd <= nr):
                assert deadline is not None  # nd < before: just read
                key = deadline[0]
                self._spend()
                self._floor_deadline = nd  # everything earlier has fired
                self._expire(store, key[9:], nd, out)
            elif nr < before:
                assert purge is not None
                key, raw = purge
                self._spend()
                self._floor_retention = nr
                store.delete(key)
                self._purge(store, key[9:10], key[10:], raw)
                out.purged += 1
            else:
                return
            # Firing may have scheduled timers: take the bounds as they are now.
            nd, nr = self._next_deadline, self._next_retention

    def _put_retention(self, store: KeyValueStore, expiry: int, kind: bytes, payload: bytes,
                       value: bytes = b"") -> None:  # fmt: skip
        store.put(keys.retention_key(expiry, kind, payload), value)
        if self._floor_retention is not None and expiry < self._floor_retention:
            self._floor_retention = expiry
        if self._next_retention is not None and expiry < self._next_retention:
            self._next_retention = expiry

    # ------------------------------------------------------------------ groups

    def _load_group(self, store: KeyValueStore, gid: bytes) -> Group | None:
        """The group, decoded once per call: callers change it only to save it right after."""
        groups = self._groups
        if gid in groups:
            return groups[gid]
        raw = store.get(keys.group_key(gid))
        g = codec.decode_group(gid, raw) if raw is not None else None
        groups[gid] = g
        return g

    def _save_group(self, store: KeyValueStore, g: Group) -> None:
        """Store ``g`` (or delete it when empty) and keep its deadline index entry in step."""
        empty = not g.payments and not g.ledgers
        wanted: int | None = None
        if not empty and g.exception_id is None:
            earliest = min(m[2] for m in (*g.payments, *g.ledgers))
            wanted = earliest + self.config.match_window_ms
        if wanted != g.deadline:
            if g.deadline is None:
                self._open_delta += 1
            elif wanted is None:
                self._open_delta -= 1
            if g.deadline is not None:
                store.delete(keys.deadline_key(g.deadline, g.gid))
            if wanted is not None:
                # A group has one deadline entry, g.deadline's, deleted above: this one is new.
                store.insert(keys.deadline_key(wanted, g.gid), b"")
                if self._floor_deadline is not None and wanted < self._floor_deadline:
                    self._floor_deadline = wanted
                if self._next_deadline is not None and wanted < self._next_deadline:
                    self._next_deadline = wanted
            g.deadline = wanted
        if empty:
            store.delete(keys.group_key(g.gid))
            self._groups[g.gid] = None
        else:
            store.put(keys.group_key(g.gid), codec.encode_group(g))
            self._groups[g.gid] = g

    def _apply(self, store: KeyValueStore, ev: Buffered | InputEvent, out: EngineOutput) -> None:
        gid = keys.group_id(ev.reference, ev.flow, ev.currency)
        g = self._load_group(store, gid) or Group(gid, None, None, [], [])
        is_pay = ev.side is Side.PAYMENT
        members = g.members(ev.side)
        size = len(g.payments) + len(g.ledgers)
        if size >= self.config.max_group_events:
            self._park(store, ev, ExceptionKind.GROUP_LIMIT, size, 0, out)
            return
        side_sum = sum(m[1] for m in members)
        if side_sum + ev.amount_minor > MAX_SUM:
            self._park(store, ev, ExceptionKind.AMOUNT_OVERFLOW, len(members), side_sum, out)
            return
        members.append((ev.event_id, ev.amount_minor, ev.event_time_ms))
        pair = find_pair_with_last(
            self.config, [m[1] for m in g.payments], [m[1] for m in g.ledgers], is_pay
        )
        while pair is not None:
            self._close(store, g, pair, ev.event_time_ms, out)
            pair = find_pair(self.config, [m[1] for m in g.payments], [m[1] for m in g.ledgers])
        self._save_group(store, g)

    def _park(
        self,
        store: KeyValueStore,
        ev: Buffered | InputEvent,
        kind: ExceptionKind,
        group_events: int,
        group_sum: int,
        out: EngineOutput,
    ) -> None:
        """Report an event its group cannot take, alone, as an open exception; it is not
        applied. Its id stays in the duplicate index until retention, so a redelivered copy
        is dropped, not reported again."""
        ids = (ev.event_id,)
        pay_ids, led_ids = (ids, ()) if ev.side is Side.PAYMENT else ((), ids)
        xid = exception_id(
            kind=kind,
            reference=ev.reference,
            flow=ev.flow,
            currency=ev.currency,
            ledger_currency=None,
            payment_ids=pay_ids,
            ledger_ids=led_ids,
        )
        limit = MAX_SUM if kind is ExceptionKind.AMOUNT_OVERFLOW else self.config.max_group_events
        out.parked += 1
        out.exceptions.append(
            _one_event_exception(
                ev,
                kind,
                xid,
                parked_detail(
                    kind=kind,
                    side=ev.side,
                    event_id=ev.event_id,
                    reference=ev.reference,
                    amount=ev.amount_minor,
                    currency=ev.currency,
                    group_events=group_events,
                    group_sum=group_sum,
                    limit=limit,
                ),
            )
        )
        # A match's purge entry forgets its members' ids; this one forgets the parked id.
        member = [(keys.SIDE_CODE[ev.side], ev.event_id)]
        expiry = ev.event_time_ms + self.config.retention_ms
        self._put_retention(
            store, expiry, keys.PURGE_MATCH, xid.encode(), codec.encode_purge_members(member)
        )

    def _close(
        self, store: KeyValueStore, g: Group, pair: tuple[int, int], now: int, out: EngineOutput
    ) -> None:
        """Emit the match of the first ``i`` payment-side and ``j`` ledger-side members."""
        i, j = pair
        reference, flow, currency = keys.parse_group_id(g.gid)
        pays, leds = g.payments[:i], g.ledgers[:j]
        del g.payments[:i], g.ledgers[:j]
        pay_sum, led_sum = sum(m[1] for m in pays), sum(m[1] for m in leds)
        diff = led_sum - pay_sum
        raised = g.exception_id
        if raised is not None:
            rule = Rule.LATE
        elif diff != 0:
            rule = Rule.TOLERANCE
        elif i > 1 or j > 1:
            rule = Rule.SPLIT
        else:
            rule = Rule.EXACT
        pay_ids = tuple(m[0] for m in pays)
        led_ids = tuple(m[0] for m in leds)
        record = MatchRecord(
            match_id=match_id(reference, flow, currency, pay_ids, led_ids),
            reference=reference,
            flow=flow,
            rule=rule,
            currency=currency,
            payment_amount_minor=pay_sum,
            ledger_amount_minor=led_sum,
            difference_minor=diff,
            payment_event_ids=pay_ids,
            ledger_event_ids=led_ids,
            first_event_time_ms=min(m[2] for m in (*pays, *leds)),
            matched_at_ms=now,
            exception_id=raised,
        )
        out.matches.append(record)
        # Matched ids stay known to the duplicate index for the retention period.
        members = [(_PAY, x) for x in pay_ids] + [(_LED, x) for x in led_ids]
        self._put_retention(
            store,
            now + self.config.retention_ms,
            keys.PURGE_MATCH,
            record.match_id.encode(),
            codec.encode_purge_members(members),
        )
        if raised is not None:
            g.exception_id = None
            self._resolve(store, g.gid, record, out)

    def _resolve(
        self, store: KeyValueStore, gid_done: bytes, match: MatchRecord, out: EngineOutput
    ) -> None:
        """A raised group balanced: resolve its exception; its remainder and the other groups of
        the exception (CURRENCY_MISMATCH) become open groups again, with their own deadlines."""
        xid, now = match.exception_id, match.matched_at_ms
        assert xid is not None
        raw = store.get(keys.exception_key(xid))
        if raw is None:
            raise CorruptStateError(f"raised group refers to missing exception {xid}")
        record, gids = codec.decode_exception(raw)
        out.exceptions.append(
            ExceptionRecord(
                exception_id=record.exception_id,
                reference=record.reference,
                flow=record.flow,
                kind=record.kind,
                status=ExceptionStatus.RESOLVED,
                currency=record.currency,
                ledger_currency=record.ledger_currency,
                payment_amount_minor=record.payment_amount_minor,
                ledger_amount_minor=record.ledger_amount_minor,
                payment_event_ids=record.payment_event_ids,
                ledger_event_ids=record.ledger_event_ids,
                raised_at_ms=record.raised_at_ms,
                resolved_at_ms=now,
                detail=resolved_detail(record.detail, match.match_id, now),
            )
        )
        store.delete(keys.exception_key(xid))
        expiry = record.raised_at_ms + self.config.retention_ms
        store.delete(keys.retention_key(expiry, keys.PURGE_EXCEPTION, xid.encode()))
        for gid in gids:
            if gid == gid_done:
                continue
            other = self._load_group(store, gid)
            if other is not None and other.exception_id == xid:
                other.exception_id = None
                self._save_group(store, other)

    # ------------------------------------------------------------------ timers

    def _expire(self, store: KeyValueStore, gid: bytes, deadline: int, out: EngineOutput) -> None:
        g = self._load_group(store, gid)
        if g is None or g.exception_id is not None or g.deadline != deadline:
            raise CorruptStateError(f"deadline index entry without its open group: {gid!r}")
        out.deadlines_fired += 1
        reference, flow, currency = keys.parse_group_id(gid)
        groups = [g]
        ledger_currency: str | None = None
        if g.payments and g.ledgers:
            kind = ExceptionKind.AMOUNT_MISMATCH
        else:
            partner = self._currency_partner(store, g, reference)
            if partner is not None:
                kind = ExceptionKind.CURRENCY_MISMATCH
                partner_currency = keys.parse_group_id(partner.gid)[2]
                if g.payments:
                    groups, ledger_currency = [g, partner], partner_currency
                else:
                    groups, ledger_currency = [partner, g], currency
                    currency = partner_currency
            elif g.payments:
                kind = ExceptionKind.MISSING_LEDGER
            else:
                kind = ExceptionKind.MISSING_PAYMENT
        pays = [m for grp in groups for m in grp.payments]
        leds = [m for grp in groups for m in grp.ledgers]
        pay_ids = tuple(m[0] for m in pays)
        led_ids = tuple(m[0] for m in leds)
        pay_sum, led_sum = sum(m[1] for m in pays), sum(m[1] for m in leds)
        xid = exception_id(
            kind=kind,
            reference=reference,
            flow=flow,
            currency=currency,
            ledger_currency=ledger_currency,
            payment_ids=pay_ids,
            ledger_ids=led_ids,
        )
        record = ExceptionRecord(
            exception_id=xid,
            reference=reference,
            flow=flow,
            kind=kind,
            status=ExceptionStatus.OPEN,
            currency=currency,
            ledger_currency=ledger_currency,
            payment_amount_minor=pay_sum,
            ledger_amount_minor=led_sum,
            payment_event_ids=pay_ids,
            ledger_event_ids=led_ids,
            raised_at_ms=deadline,
            resolved_at_ms=None,
            detail=timeout_detail(
                kind=kind,
                reference=reference,
                flow=flow,
                currency=currency,
                ledger_currency=ledger_currency,
                payment_sum=pay_sum,
                payment_count=len(pays),
                ledger_sum=led_sum,
                ledger_count=len(leds),
                window_ms=self.config.match_window_ms,
                tolerance=self.config.tolerance(pay_sum),
            ),
        )
        out.exceptions.append(record)
        store.put(keys.exception_key(xid), codec.encode_exception(record, [x.gid for x in groups]))
        expiry = deadline + self.config.retention_ms
        self._put_retention(store, expiry, keys.PURGE_EXCEPTION, xid.encode())
        for grp in groups:
            grp.exception_id = xid
            self._save_group(store, grp)

    def _currency_partner(self, store: KeyValueStore, g: Group, reference: str) -> Group | None:
        """An open one-sided group of the same reference and flow, other side, other currency
        (the first in currency order)."""
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

    def _purge_group(self, store: KeyValueStore, g: Group, record: ExceptionRecord) -> None:
        """Forget the members the exception lists. Events that joined the raised group later
        are listed nowhere yet: they carry on as an open group with their own deadline."""
        listed = {(_PAY, x) for x in record.payment_event_ids}
        listed |= {(_LED, x) for x in record.ledger_event_ids}
        for code, members in ((_PAY, g.payments), (_LED, g.ledgers)):
            for m in members:
                if (code, m[0]) in listed:
                    store.delete(keys.dedupe_key_code(code, m[0]))
        g.payments = [m for m in g.payments if (_PAY, m[0]) not in listed]
        g.ledgers = [m for m in g.ledgers if (_LED, m[0]) not in listed]
        g.exception_id = None
        self._save_group(store, g)

    def _purge(self, store: KeyValueStore, kind: bytes, payload: bytes, raw: bytes) -> None:
        if kind == keys.PURGE_MATCH:
            for code, event_id in codec.decode_purge_members(raw):
                store.delete(keys.dedupe_key_code(code, event_id))
        elif kind == keys.PURGE_OUTBOX:  # written by versions with an outbox
            store.delete(keys.OUTBOX + payload)
        elif kind == keys.PURGE_EXCEPTION:
            xid = payload.decode()
            stored = store.get(keys.exception_key(xid))
            if stored is None:
                return
            record, gids = codec.decode_exception(stored)
            store.delete(keys.exception_key(xid))
            for gid in gids:
                g = self._load_group(store, gid)
                if g is not None and g.exception_id == xid:
                    self._purge_group(store, g, record)
        else:
            raise CorruptStateError(f"unknown retention entry kind {kind!r}")


def _one_event_exception(
    ev: InputEvent | Buffered, kind: ExceptionKind, xid: str, detail: str
) -> ExceptionRecord:
    """An open exception about one event alone (a conflicting duplicate, a parked event)."""
    is_pay = ev.side is Side.PAYMENT
    ids = (ev.event_id,)
    return ExceptionRecord(
        exception_id=xid,
        reference=ev.reference,
        flow=ev.flow,
        kind=kind,
        status=ExceptionStatus.OPEN,
        currency=ev.currency,
        ledger_currency=None,
        payment_amount_minor=ev.amount_minor if is_pay else 0,
        ledger_amount_minor=0 if is_pay else ev.amount_minor,
        payment_event_ids=ids if is_pay else (),
        ledger_event_ids=() if is_pay else ids,
        raised_at_ms=ev.event_time_ms,
        resolved_at_ms=None,
        detail=detail,
    )


def _validate(ev: InputEvent) -> None:
    if type(ev.amount_minor) is not int or ev.amount_minor <= 0:
        raise InvalidInputError(f"event {ev.event_id!r}: amount must be a positive int")
    if type(ev.event_time_ms) is not int or type(ev.offset) is not int or ev.offset < 0:
        raise InvalidInputError(f"event {ev.event_id!r}: event time and offset must be ints")
    if not isinstance(ev.content_hash, bytes) or not ev.content_hash:
        raise InvalidInputError(f"event {ev.event_id!r}: content_hash must be non-empty bytes")


def _members(ms: list[Member]) -> tuple[MemberView, ...]:
    return tuple(MemberView(m[0], m[1], m[2]) for m in ms)


def _group_view(g: Group) -> GroupView:
    reference, flow, currency = keys.parse_group_id(g.gid)
    return GroupView(
        reference=reference,
        flow=flow,
        currency=currency,
        status=GroupStatus.RAISED if g.exception_id is not None else GroupStatus.OPEN,
        deadline_ms=g.deadline,
        exception_id=g.exception_id,
        payment_events=_members(g.payments),
        ledger_events=_members(g.ledgers),
    )


def _buffered_view(ev: Buffered) -> BufferedView:
    return BufferedView(
        ev.side, ev.event_id, ev.reference, ev.flow, ev.currency, ev.amount_minor,
        ev.event_time_ms, ev.offset,
    )  # fmt: skip

"""Raising and resolving exceptions: what the engine reports when a group does not balance.

* A group's deadline passes: it is raised as MISSING_LEDGER, MISSING_PAYMENT, AMOUNT_MISMATCH,
  or CURRENCY_MISMATCH together with its partner group of the other currency. A raised group
  keeps taking events; when it balances, its exception is resolved by that late match.
* An event its group cannot take is parked: reported alone (AMOUNT_OVERFLOW, GROUP_LIMIT).
* A duplicate event id with other content is reported alone (DUPLICATE_CONFLICT).
* An exception still open at its retention forgets the members it lists.
"""

from __future__ import annotations

from streams.contract.model import (
    ExceptionKind,
    ExceptionRecord,
    ExceptionStatus,
    InputEvent,
    MatchRecord,
    Side,
)
from streams.engine import codec, dedupe, keys
from streams.engine.codec import Buffered, Group
from streams.engine.config import MAX_SUM, MatchConfig
from streams.engine.exception_details import (
    conflict_detail,
    parked_detail,
    resolved_detail,
    timeout_detail,
)
from streams.engine.exceptions import CorruptStateError
from streams.engine.groups import Groups
from streams.engine.ids import conflict_id, exception_id
from streams.engine.outbox import EngineOutput
from streams.engine.timers import Timers
from streams.state.base import KeyValueStore

_PAY = keys.SIDE_CODE[Side.PAYMENT]
_LED = keys.SIDE_CODE[Side.LEDGER]


class Raiser:
    """Raises, resolves and forgets the exceptions of one call (its groups, timers, outbox)."""

    def __init__(
        self,
        store: KeyValueStore,
        config: MatchConfig,
        groups: Groups,
        timers: Timers,
        out: EngineOutput,
    ) -> None:
        self.store = store
        self.config = config
        self.groups = groups
        self.timers = timers
        self.out = out

    def park(
        self, ev: Buffered | InputEvent, kind: ExceptionKind, group_events: int, group_sum: int
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
        out = self.out
        out.parked += 1
        out.exceptions.append(
            one_event_exception(
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
        self.timers.put_retention(
            expiry, keys.PURGE_MATCH, xid.encode(), codec.encode_purge_members(member)
        )

    def expire(self, gid: bytes, deadline: int) -> None:
        """An open group's deadline passed: raise it (with its partner group for a
        CURRENCY_MISMATCH)."""
        g = self.groups.load(gid)
        if g is None or g.exception_id is not None or g.deadline != deadline:
            raise CorruptStateError(f"deadline index entry without its open group: {gid!r}")
        self.out.deadlines_fired += 1
        reference, flow, currency = keys.parse_group_id(gid)
        groups = [g]
        ledger_currency: str | None = None
        if g.payments and g.ledgers:
            kind = ExceptionKind.AMOUNT_MISMATCH
        else:
            partner = self.groups.currency_partner(g, reference)
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
        self.out.exceptions.append(record)
        self.store.put(
            keys.exception_key(xid), codec.encode_exception(record, [x.gid for x in groups])
        )
        expiry = deadline + self.config.retention_ms
        self.timers.put_retention(expiry, keys.PURGE_EXCEPTION, xid.encode())
        for grp in groups:
            grp.exception_id = xid
            self.groups.save(grp)

    def resolve(self, gid_done: bytes, match: MatchRecord) -> None:
        """A raised group balanced: resolve its exception; its remainder and the other groups of
        the exception (CURRENCY_MISMATCH) become open groups again, with their own deadlines."""
        xid, now = match.exception_id, match.matched_at_ms
        assert xid is not None
        store = self.store
        raw = store.get(keys.exception_key(xid))
        if raw is None:
            raise CorruptStateError(f"raised group refers to missing exception {xid}")
        record, gids = codec.decode_exception(raw)
        self.out.exceptions.append(
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
        self.timers.cancel_retention(expiry, keys.PURGE_EXCEPTION, xid.encode())
        for gid in gids:
            if gid == gid_done:
                continue
            other = self.groups.load(gid)
            if other is not None and other.exception_id == xid:
                other.exception_id = None
                self.groups.save(other)

    def forget(self, xid: str) -> None:
        """The retention purge of an exception still open: drop it, and the members it lists
        from its groups and from the duplicate index."""
        store = self.store
        stored = store.get(keys.exception_key(xid))
        if stored is None:
            return
        record, gids = codec.decode_exception(stored)
        store.delete(keys.exception_key(xid))
        for gid in gids:
            g = self.groups.load(gid)
            if g is not None and g.exception_id == xid:
                self._purge_group(g, record)

    def _purge_group(self, g: Group, record: ExceptionRecord) -> None:
        """Forget the members the exception lists. Events that joined the raised group later
        are listed nowhere yet: they carry on as an open group with their own deadline."""
        listed = {(_PAY, x) for x in record.payment_event_ids}
        listed |= {(_LED, x) for x in record.ledger_event_ids}
        dedupe.forget(
            self.store,
            (
                (code, m[0])
                for code, members in ((_PAY, g.payments), (_LED, g.ledgers))
                for m in members
                if (code, m[0]) in listed
            ),
        )
        g.payments = [m for m in g.payments if (_PAY, m[0]) not in listed]
        g.ledgers = [m for m in g.ledgers if (_LED, m[0]) not in listed]
        g.exception_id = None
        self.groups.save(g)


def conflict_exception(ev: InputEvent, known: bytes) -> ExceptionRecord:
    """A DUPLICATE_CONFLICT: ``ev`` repeats a known event id with another content hash."""
    return one_event_exception(
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


def one_event_exception(
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

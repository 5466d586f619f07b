"""Applying an event to its group: the group's limits, then the closing rule
(:mod:`streams.engine.closing`); every balanced pair of prefixes leaves the group as a match."""

from __future__ import annotations

from streams.contract.model import ExceptionKind, InputEvent, MatchRecord, Rule, Side
from streams.engine import codec, keys
from streams.engine.closing import find_pair, find_pair_with_last
from streams.engine.codec import Buffered, Group
from streams.engine.config import MAX_SUM, MatchConfig
from streams.engine.groups import Groups
from streams.engine.ids import match_id
from streams.engine.outbox import EngineOutput
from streams.engine.raising import Raiser
from streams.engine.timers import Timers

_PAY = keys.SIDE_CODE[Side.PAYMENT]
_LED = keys.SIDE_CODE[Side.LEDGER]


class Matcher:
    """Applies the events of one call to their groups (its groups, exceptions, timers, outbox)."""

    def __init__(
        self,
        config: MatchConfig,
        groups: Groups,
        raiser: Raiser,
        timers: Timers,
        out: EngineOutput,
    ) -> None:
        self.config = config
        self.groups = groups
        self.raiser = raiser
        self.timers = timers
        self.out = out

    def apply(self, ev: Buffered | InputEvent) -> None:
        gid = keys.group_id(ev.reference, ev.flow, ev.currency)
        g = self.groups.load(gid) or Group(gid, None, None, [], [])
        is_pay = ev.side is Side.PAYMENT
        members = g.members(ev.side)
        size = len(g.payments) + len(g.ledgers)
        if size >= self.config.max_group_events:
            self.raiser.park(ev, ExceptionKind.GROUP_LIMIT, size, 0)
            return
        side_sum = sum(m[1] for m in members)
        if side_sum + ev.amount_minor > MAX_SUM:
            self.raiser.park(ev, ExceptionKind.AMOUNT_OVERFLOW, len(members), side_sum)
            return
        members.append((ev.event_id, ev.amount_minor, ev.event_time_ms))
        pair = find_pair_with_last(
            self.config, [m[1] for m in g.payments], [m[1] for m in g.ledgers], is_pay
        )
        while pair is not None:
            self._close(g, pair, ev.event_time_ms)
            pair = find_pair(self.config, [m[1] for m in g.payments], [m[1] for m in g.ledgers])
        self.groups.save(g)

    def _close(self, g: Group, pair: tuple[int, int], now: int) -> None:
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
        self.out.matches.append(record)
        # Matched ids stay known to the duplicate index for the retention period.
        members = [(_PAY, x) for x in pay_ids] + [(_LED, x) for x in led_ids]
        self.timers.put_retention(
            now + self.config.retention_ms,
            keys.PURGE_MATCH,
            record.match_id.encode(),
            codec.encode_purge_members(members),
        )
        if raised is not None:
            g.exception_id = None
            self.raiser.resolve(g.gid, record)

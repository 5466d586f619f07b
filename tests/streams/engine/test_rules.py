"""One hand-written case per rule of the spec: inputs, and the outputs worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from streams.contract.model import (
    ExceptionKind,
    ExceptionStatus,
    Flow,
    InputEvent,
    MatchRecord,
    Side,
)
from streams.engine import MatchConfig
from tests.streams.engine.testkit import (
    HOUR,
    MIN,
    T0,
    Feed,
    expected_exception_id,
    match,
    run,
    strip_detail,
)

W = 48 * HOUR  # default match window
OPEN, RESOLVED = ExceptionStatus.OPEN, ExceptionStatus.RESOLVED


def exc(
    kind: ExceptionKind,
    *,
    pays: tuple[InputEvent, ...] = (),
    leds: tuple[InputEvent, ...] = (),
    raised_at: int,
    status: ExceptionStatus = OPEN,
    resolved_at: int | None = None,
    currency: str | None = None,
    ledger_currency: str | None = None,
) -> tuple[object, ...]:
    first = (pays or leds)[0]
    cur = currency or first.currency
    pids = tuple(e.event_id for e in pays)
    lids = tuple(e.event_id for e in leds)
    xid = expected_exception_id(kind, first.reference, first.flow, cur, pids, lids, ledger_currency)
    return (
        xid, first.reference, first.flow, kind, status, cur, ledger_currency,
        sum(e.amount_minor for e in pays), sum(e.amount_minor for e in leds),
        pids, lids, raised_at, resolved_at,
    )  # fmt: skip


@dataclass
class Case:
    feed: Feed
    matches: list[MatchRecord]
    exceptions: list[tuple[object, ...]]
    config: MatchConfig = field(default_factory=MatchConfig)
    counters: dict[str, int] = field(default_factory=dict)
    detail_has: tuple[str, ...] = ()


def exact() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    l1 = f.led("l1", 100, T0 + HOUR)
    f.flush(T0 + 100 * HOUR)
    return Case(f, [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + HOUR)], [])


def split_one_payment_many_ledger() -> Case:
    f = Feed()
    p1 = f.pay("p1", 300, T0)
    l1 = f.led("l1", 100, T0 + MIN)
    l2 = f.led("l2", 200, T0 + 2 * MIN)
    f.flush(T0 + 100 * HOUR)
    return Case(f, [match(rule="split", pays=[p1], leds=[l1, l2], matched_at=T0 + 2 * MIN)], [])


def split_many_payment_one_ledger() -> Case:
    f = Feed()
    l1 = f.led("l1", 300, T0)
    p1 = f.pay("p1", 100, T0 + MIN)
    p2 = f.pay("p2", 200, T0 + 2 * MIN)
    f.flush(T0 + 100 * HOUR)
    return Case(f, [match(rule="split", pays=[p1, p2], leds=[l1], matched_at=T0 + 2 * MIN)], [])


def ledger_order_is_event_time_not_arrival() -> Case:
    # l1 arrives first but l2 is earlier: applied l2 (200), then l1 (100) closes 300.
    f = Feed()
    p1 = f.pay("p1", 300, T0)
    l1 = f.led("l1", 100, T0 + 2 * MIN)
    l2 = f.led("l2", 200, T0 + MIN)
    f.flush(T0 + 100 * HOUR)
    return Case(f, [match(rule="split", pays=[p1], leds=[l2, l1], matched_at=T0 + 2 * MIN)], [])


def tolerance_minor() -> Case:
    f = Feed()
    p1 = f.pay("p1", 1000, T0)
    l1 = f.led("l1", 997, T0 + MIN)
    f.flush(T0 + 100 * HOUR)
    m = match(rule="tolerance", pays=[p1], leds=[l1], matched_at=T0 + MIN)
    assert m.difference_minor == -3
    return Case(f, [m], [], MatchConfig(amount_tolerance_minor=5))


def tolerance_bps_floor() -> Case:
    # 50 bps of 999 is 4.995, floored to 4: 1003 matches (diff 4), 1004 (diff 5) does not.
    f = Feed()
    p1 = f.pay("p1", 999, T0, ref="A")
    l1 = f.led("l1", 1003, T0 + MIN, ref="A")
    p2 = f.pay("p2", 999, T0, ref="B")
    l2 = f.led("l2", 1004, T0 + MIN, ref="B")
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [match(rule="tolerance", pays=[p1], leds=[l1], matched_at=T0 + MIN)],
        [exc(ExceptionKind.AMOUNT_MISMATCH, pays=(p2,), leds=(l2,), raised_at=T0 + W)],
        MatchConfig(amount_tolerance_bps=50),
        detail_has=("999", "1004", "tolerance 4"),
    )


def missing_ledger() -> Case:
    f = Feed()
    p1 = f.pay("p1", 500, T0)
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [],
        [exc(ExceptionKind.MISSING_LEDGER, pays=(p1,), raised_at=T0 + W)],
        detail_has=("500 EUR", "48 h", "'R1'"),
    )


def missing_payment() -> Case:
    f = Feed()
    l1 = f.led("l1", 700, T0, cur="USD")
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [],
        [exc(ExceptionKind.MISSING_PAYMENT, leds=(l1,), raised_at=T0 + W)],
        detail_has=("700 USD", "48 h"),
    )


def amount_mismatch() -> Case:
    f = Feed()
    l1 = f.led("l1", 90, T0)
    p1 = f.pay("p1", 100, T0 + HOUR)
    f.flush(T0 + 100 * HOUR)
    # Deadline from the earliest member (l1 at T0).
    return Case(
        f, [], [exc(ExceptionKind.AMOUNT_MISMATCH, pays=(p1,), leds=(l1,), raised_at=T0 + W)]
    )


def currency_mismatch() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0, cur="EUR")
    l1 = f.led("l1", 100, T0 + HOUR, cur="USD")
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [],
        [
            exc(
                ExceptionKind.CURRENCY_MISMATCH,
                pays=(p1,),
                leds=(l1,),
                raised_at=T0 + W,
                currency="EUR",
                ledger_currency="USD",
            )
        ],
        detail_has=("100 EUR", "100 USD"),
    )


def refund_flow_matches_debits_only() -> Case:
    f = Feed()
    r1 = f.pay("r1", 100, T0, flow=Flow.REFUND)
    d1 = f.led("d1", 100, T0 + MIN, flow=Flow.REFUND)
    c1 = f.led("c1", 100, T0 + 2 * MIN, flow=Flow.PAYMENT)  # a credit: not for the refund
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [match(rule="exact", pays=[r1], leds=[d1], matched_at=T0 + MIN)],
        [exc(ExceptionKind.MISSING_PAYMENT, leds=(c1,), raised_at=T0 + 2 * MIN + W)],
    )


def late_resolution() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    f.flush(T0 + 49 * HOUR)  # watermark passes p1's deadline: MISSING_LEDGER
    l1 = f.led("l1", 100, T0 + 50 * HOUR)
    f.flush(T0 + 100 * HOUR)
    raised = exc(ExceptionKind.MISSING_LEDGER, pays=(p1,), raised_at=T0 + W)
    resolved = exc(
        ExceptionKind.MISSING_LEDGER,
        pays=(p1,),
        raised_at=T0 + W,
        status=RESOLVED,
        resolved_at=T0 + 50 * HOUR,
    )
    xid = str(raised[0])
    return Case(
        f,
        [match(rule="late", pays=[p1], leds=[l1], matched_at=T0 + 50 * HOUR, exception_id=xid)],
        [raised, resolved],
    )


def remainder_group_after_match() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    p2 = f.pay("p2", 50, T0 + MIN)
    l1 = f.led("l1", 100, T0 + 2 * MIN)
    f.flush(T0 + 100 * HOUR)
    # p2 stays open: its own deadline is its time plus the window.
    return Case(
        f,
        [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + 2 * MIN)],
        [exc(ExceptionKind.MISSING_LEDGER, pays=(p2,), raised_at=T0 + MIN + W)],
    )


def remainder_matches_later() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    p2 = f.pay("p2", 50, T0 + MIN)
    l1 = f.led("l1", 100, T0 + 2 * MIN)
    l2 = f.led("l2", 20, T0 + 3 * MIN)
    l3 = f.led("l3", 30, T0 + 4 * MIN)
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [
            match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + 2 * MIN),
            match(rule="split", pays=[p2], leds=[l2, l3], matched_at=T0 + 4 * MIN),
        ],
        [],
    )


def smallest_pair_first() -> Case:
    # After l2 both (p1+p2 | l1+l2) = 2+2 and nothing smaller balances; p1 | l1 = 10 vs 7 fails.
    f = Feed()
    p1 = f.pay("p1", 10, T0)
    p2 = f.pay("p2", 5, T0 + MIN)
    l1 = f.led("l1", 7, T0 + 2 * MIN)
    l2 = f.led("l2", 8, T0 + 3 * MIN)
    f.flush(T0 + 100 * HOUR)
    return Case(f, [match(rule="split", pays=[p1, p2], leds=[l1, l2], matched_at=T0 + 3 * MIN)], [])


def duplicate_while_buffered() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    f.again(p1)
    l1 = f.led("l1", 100, T0 + MIN)
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + MIN)],
        [],
        counters={"duplicates_dropped": 1, "buffered": 2},
    )


def duplicate_while_open() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    f.flush(T0 + HOUR)  # p1 released into an open group
    f.again(p1)
    l1 = f.led("l1", 100, T0 + 2 * HOUR)
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + 2 * HOUR)],
        [],
        counters={"duplicates_dropped": 1, "late_events": 0},
    )


def duplicate_after_match() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    l1 = f.led("l1", 100, T0 + MIN)
    f.flush(T0 + HOUR)
    f.again(p1)
    f.again(l1)
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + MIN)],
        [],
        counters={"duplicates_dropped": 2},
    )


def duplicate_while_raised() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    f.flush(T0 + 49 * HOUR)
    f.again(p1)
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [],
        [exc(ExceptionKind.MISSING_LEDGER, pays=(p1,), raised_at=T0 + W)],
        counters={"duplicates_dropped": 1},
    )


def duplicate_conflict() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    f.pay("p1", 999, T0 + MIN, variant="changed")
    l1 = f.led("l1", 100, T0 + 2 * MIN)
    f.flush(T0 + 100 * HOUR)
    return Case(
        f,
        [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + 2 * MIN)],
        [],  # the conflict is checked separately (its id hashes both contents)
        counters={"conflicts": 1},
    )


def late_event_applied_at_once() -> Case:
    f = Feed()
    f.flush(T0 + 10 * HOUR)  # watermark T0 + 10 h - 5 min
    p1 = f.pay("p1", 100, T0 + HOUR)
    l1 = f.led("l1", 100, T0 + 2 * HOUR)
    return Case(
        f,
        [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + 2 * HOUR)],
        [],
        counters={"late_events": 2, "buffered": 0},
    )


def late_event_past_its_window() -> Case:
    f = Feed()
    f.flush(T0 + 100 * HOUR)
    p1 = f.pay("p1", 100, T0)  # its deadline T0 + 48 h is already behind the watermark
    return Case(
        f,
        [],
        [exc(ExceptionKind.MISSING_LEDGER, pays=(p1,), raised_at=T0 + W)],
        counters={"late_events": 1},
    )


def event_at_the_deadline_is_in_time() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    l1 = f.led("l1", 100, T0 + W)
    f.flush(T0 + 100 * HOUR)
    return Case(f, [match(rule="exact", pays=[p1], leds=[l1], matched_at=T0 + W)], [])


def event_after_the_deadline_is_late_match() -> Case:
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    l1 = f.led("l1", 100, T0 + W + 1)
    f.flush(T0 + 100 * HOUR)
    raised = exc(ExceptionKind.MISSING_LEDGER, pays=(p1,), raised_at=T0 + W)
    resolved = exc(
        ExceptionKind.MISSING_LEDGER,
        pays=(p1,),
        raised_at=T0 + W,
        status=RESOLVED,
        resolved_at=T0 + W + 1,
    )
    return Case(
        f,
        [
            match(
                rule="late",
                pays=[p1],
                leds=[l1],
                matched_at=T0 + W + 1,
                exception_id=str(raised[0]),
            )
        ],
        [raised, resolved],
    )


def retention_purge() -> Case:
    cfg = MatchConfig(match_window_ms=HOUR, retention_ms=10 * HOUR)
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    f.flush(T0 + 20 * HOUR)  # raised at T0 + 1 h, purged once the watermark passes T0 + 11 h
    l1 = f.led("l1", 100, T0 + 21 * HOUR)  # too late to resolve it: a group of its own
    f.flush(T0 + 30 * HOUR)
    return Case(
        f,
        [],
        [
            exc(ExceptionKind.MISSING_LEDGER, pays=(p1,), raised_at=T0 + HOUR),
            exc(ExceptionKind.MISSING_PAYMENT, leds=(l1,), raised_at=T0 + 22 * HOUR),
        ],
        cfg,
        counters={"purged": 1},  # the exception (its outbox entries are not due yet)
    )


CASES: dict[str, Callable[[], Case]] = {
    f.__name__: f
    for f in (
        exact,
        split_one_payment_many_ledger,
        split_many_payment_one_ledger,
        ledger_order_is_event_time_not_arrival,
        tolerance_minor,
        tolerance_bps_floor,
        missing_ledger,
        missing_payment,
        amount_mismatch,
        currency_mismatch,
        refund_flow_matches_debits_only,
        late_resolution,
        remainder_group_after_match,
        remainder_matches_later,
        smallest_pair_first,
        duplicate_while_buffered,
        duplicate_while_open,
        duplicate_after_match,
        duplicate_while_raised,
        duplicate_conflict,
        late_event_applied_at_once,
        late_event_past_its_window,
        event_at_the_deadline_is_in_time,
        event_after_the_deadline_is_late_match,
        retention_purge,
    )
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule(name: str) -> None:
    case = CASES[name]()
    out, store, engine = run(case.feed.items, case.config)
    assert out.matches == case.matches
    got = [
        strip_detail(x) for x in out.exceptions if x.kind is not ExceptionKind.DUPLICATE_CONFLICT
    ]
    assert got == case.exceptions
    for counter, value in case.counters.items():
        assert getattr(out, counter) == value, counter
    for text in case.detail_has:
        assert any(text in x.detail for x in out.exceptions), text
    # Everything decided: nothing left open or buffered except raised groups.
    snap = engine.snapshot(store, 0)
    assert not snap.buffered
    assert all(g.status == "raised" for g in snap.groups)


def test_duplicate_conflict_record() -> None:
    case = duplicate_conflict()
    out, _store, _engine = run(case.feed.items)
    [conflict] = out.exceptions
    original, changed = case.feed.items[0], case.feed.items[1]
    assert isinstance(original, InputEvent)
    assert isinstance(changed, InputEvent)
    assert conflict.kind is ExceptionKind.DUPLICATE_CONFLICT
    assert conflict.status is OPEN
    assert conflict.payment_event_ids == ("p1",)
    assert conflict.ledger_event_ids == ()
    assert conflict.payment_amount_minor == 999  # from the conflicting copy
    assert conflict.raised_at_ms == T0 + MIN
    assert conflict.resolved_at_ms is None
    assert "p1" in conflict.detail
    # Derived from side, id and both hashes: the same conflict again has the same id.
    again = Feed()
    again.pay("p1", 100, T0)
    again.pay("p1", 999, T0 + MIN, variant="changed")
    out2, _, _ = run(again.items)
    assert out2.exceptions == [conflict]
    # A conflict against another content gets another id.
    other = Feed()
    other.pay("p1", 100, T0)
    other.pay("p1", 998, T0 + MIN, variant="changed")
    out3, _, _ = run(other.items)
    assert out3.exceptions[0].exception_id != conflict.exception_id
    assert Side.PAYMENT.value in conflict.detail


def test_currency_mismatch_resolution_reopens_other_currency() -> None:
    f = Feed()
    p1 = f.pay("p1", 100, T0, cur="EUR")
    l1 = f.led("l1", 100, T0 + HOUR, cur="USD")
    f.flush(T0 + 60 * HOUR)
    l2 = f.led("l2", 100, T0 + 61 * HOUR, cur="EUR")  # the EUR credit turns up late
    f.flush(T0 + 200 * HOUR)
    out, _, _ = run(f.items)
    cm = exc(
        ExceptionKind.CURRENCY_MISMATCH, pays=(p1,), leds=(l1,), raised_at=T0 + W,
        currency="EUR", ledger_currency="USD",
    )  # fmt: skip
    resolved = (*cm[:4], RESOLVED, *cm[5:-1], T0 + 61 * HOUR)
    # l1 alone again: its deadline (T0 + 1 h + 48 h) is past, so MISSING_PAYMENT right away.
    missing = exc(ExceptionKind.MISSING_PAYMENT, leds=(l1,), raised_at=T0 + HOUR + W)
    assert [strip_detail(x) for x in out.exceptions] == [cm, resolved, missing]
    assert out.matches == [
        match(rule="late", pays=[p1], leds=[l2], matched_at=T0 + 61 * HOUR, exception_id=str(cm[0]))
    ]


def test_lookup_lists_open_and_raised_groups() -> None:
    f = Feed()
    f.pay("p1", 100, T0, ref="A", cur="EUR")
    f.pay("p2", 100, T0 + 50 * HOUR, ref="A", cur="USD")
    f.pay("p3", 100, T0, ref="B")
    f.flush(T0 + 50 * HOUR + 10 * MIN)
    _, store, engine = run(f.items)
    views = engine.lookup(store, "A")
    assert [(v.currency, v.status, [m.event_id for m in v.payment_events]) for v in views] == [
        ("EUR", "raised", ["p1"]),
        ("USD", "open", ["p2"]),
    ]
    assert views[1].deadline_ms == T0 + 50 * HOUR + W
    assert engine.lookup(store, "nope") == []


def test_retention_forgets_event_ids() -> None:
    cfg = MatchConfig(match_window_ms=HOUR, retention_ms=10 * HOUR)
    f = Feed()
    p1 = f.pay("p1", 100, T0)
    l1 = f.led("l1", 100, T0 + MIN)
    f.flush(T0 + 5 * HOUR)
    f.again(p1)  # within retention of the match (T0 + 1 min + 10 h): dropped
    f.flush(T0 + 11 * HOUR)
    f.again(l1)  # past it: a new event (late, so applied at once; its deadline is past too)
    out, store, engine = run(f.items, cfg)
    assert out.duplicates_dropped == 1
    assert out.late_events == 1
    [group] = engine.snapshot(store, 0).groups
    assert [m.event_id for m in group.ledger_events] == ["l1"]
    assert group.status == "raised"
    assert [x.kind for x in out.exceptions] == [ExceptionKind.MISSING_PAYMENT]

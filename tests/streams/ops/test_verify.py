"""The trial balance's accounting on hand-made inputs and rows (pure, no broker)."""

from __future__ import annotations

from streams.contract.model import Flow, InputEvent, Side
from streams.engine.config import MatchConfig
from streams.engine.ids import conflict_id
from streams.ops.verify import (
    ExceptionRow,
    InputRow,
    MatchRow,
    StateMember,
    Verdict,
    Window,
    render,
    verify,
)

CONFIG = MatchConfig(amount_tolerance_minor=5)
T = 1_767_225_600_000


def ev(
    side: Side, event_id: str, ref: str, amount: int, offset: int, h: bytes = b"h"
) -> InputEvent:
    return InputEvent(side, event_id, ref, amount, "EUR", T + offset, Flow.PAYMENT, h, offset)


def row(e: InputEvent) -> InputRow:
    return InputRow("payments" if e.side is Side.PAYMENT else "ledger", 0, e.offset, e)


def match(
    mid: str, ref: str, pays: tuple[str, ...], leds: tuple[str, ...], pay: int, led: int,
    rule: str = "exact", xid: str | None = None,
) -> MatchRow:  # fmt: skip
    return MatchRow(mid, ref, rule, "EUR", pay, led, led - pay, pays, leds, T, xid)


def exc(
    xid: str, ref: str, kind: str, status: str, pays: tuple[str, ...], leds: tuple[str, ...],
    pay: int, led: int,
) -> ExceptionRow:  # fmt: skip
    return ExceptionRow(xid, ref, kind, status, pay, led, pays, leds, T)


def check(
    inputs: list[InputRow],
    matches: list[MatchRow] = [],  # noqa: B006 - never mutated
    exceptions: list[ExceptionRow] = [],  # noqa: B006
    dead: list[tuple[str, int, int]] = [],  # noqa: B006
    state: list[StateMember] = [],  # noqa: B006
    window: Window | None = None,
) -> Verdict:
    return verify(
        inputs, matches, exceptions, dead, state, partitions=1, config=CONFIG,
        window=window or Window(),
    )  # fmt: skip


def problems(v: Verdict) -> list[tuple[str, str]]:
    return [(f.problem, f.subject) for f in v.findings]


P1, L1 = ev(Side.PAYMENT, "p1", "R1", 100, 0), ev(Side.LEDGER, "l1", "R1", 100, 0)


def test_a_balanced_day_accounts_every_record_once() -> None:
    p2 = ev(Side.PAYMENT, "p2", "R2", 70, 1)
    p3 = ev(Side.PAYMENT, "p3", "R3", 30, 2)
    bad = InputRow("payments", 0, 3, None, "BAD_JSON")
    beat = InputRow("ledger", 0, 1, None, heartbeat=True)
    v = check(
        [row(P1), row(L1), row(p2), row(p3), bad, beat, row(P1)],
        [match("m1", "R1", ("p1",), ("l1",), 100, 100)],
        [exc("x2", "R2", "MISSING_LEDGER", "open", ("p2",), (), 70, 0)],
        [("payments", 0, 3)],
        [StateMember(0, Side.PAYMENT, "p3", 30, "open group")],
    )
    assert v.ok, v.findings
    t = v.tally
    assert (t.inputs, t.matched, t.in_exceptions, t.in_state) == (7, 2, 1, 1)
    assert (t.dead_letters, t.heartbeats, t.duplicates) == (1, 1, 1)
    assert "OK: every input" in render(v)


def test_an_event_in_no_place_and_one_counted_twice_are_named() -> None:
    v = check(
        [row(P1), row(L1)],
        [
            match("m1", "R1", ("p1",), ("l1",), 100, 100),
            match("m2", "R1", ("p1",), (), 100, 0, rule="split"),
        ],
    )
    assert (
        "counted more than once",
        "payment event 'p1' (reference 'R1', payments[0]@0)",
    ) in problems(v)
    v = check([row(P1), row(L1)], [])
    assert problems(v)[:2] == [
        ("in no place", "ledger event 'l1' (reference 'R1', ledger[0]@0)"),
        ("in no place", "payment event 'p1' (reference 'R1', payments[0]@0)"),
    ]


def test_a_conflicting_duplicate_needs_its_exception() -> None:
    copy = ev(Side.PAYMENT, "p1", "R1", 999, 5, h=b"other")
    xid = conflict_id(Side.PAYMENT, "p1", b"h", b"other")
    ok = [match("m1", "R1", ("p1",), ("l1",), 100, 100)]
    conflict = exc(xid, "R1", "DUPLICATE_CONFLICT", "open", ("p1",), (), 999, 0)
    v = check([row(P1), row(L1), row(copy)], ok, [conflict])
    assert v.ok
    assert v.tally.conflicts == 1
    v = check([row(P1), row(L1), row(copy)], ok)
    assert problems(v) == [
        (
            "conflicting duplicate with no DUPLICATE_CONFLICT exception",
            "payment event 'p1' (reference 'R1', payments[0]@5)",
        )
    ]


def test_rows_must_be_explained_by_inputs_and_by_each_other() -> None:
    # A late match resolves its exception exactly once; its amounts are its inputs'.
    raised = exc("x1", "R1", "MISSING_LEDGER", "resolved", ("p1",), (), 100, 0)
    late = match("m1", "R1", ("p1",), ("l1",), 100, 100, rule="late", xid="x1")
    assert check([row(P1), row(L1)], [late], [raised]).ok
    twice = match("m2", "R1", (), (), 0, 0, rule="late", xid="x1")
    assert (
        "resolved twice",
        "exception x1 (reference 'R1', MISSING_LEDGER, resolved)",
    ) in problems(check([row(P1), row(L1)], [late, twice], [raised]))
    orphan = match("m1", "R1", ("p1",), ("l1",), 100, 100, rule="late", xid="gone")
    assert problems(check([row(P1), row(L1)], [orphan]))[0][0] == "late match without its exception"
    wrong = match("m1", "R1", ("p1",), ("l1",), 90, 100, rule="tolerance")
    found = problems(check([row(P1), row(L1)], [wrong]))
    assert ("amounts", "match m1 (reference 'R1', rule tolerance)") in found
    assert ("rule does not fit the amounts", "match m1 (reference 'R1', rule tolerance)") in found
    assert ("reference does not balance", "reference 'R1' (payment)") in found
    ghost = match("m9", "R9", ("p9",), (), 1, 0, rule="split")
    assert ("refers to an event no input has", "match m9") in problems(check([], [ghost]))


def test_the_window_limits_what_is_checked() -> None:
    early = ev(Side.PAYMENT, "p0", "R0", 10, -10_000)
    v = check([row(early), row(P1), row(L1)], [match("m1", "R1", ("p1",), ("l1",), 100, 100)],
              window=Window(T - 1000, T + 1000))  # fmt: skip
    assert v.ok
    assert v.tally.outside_window == 1

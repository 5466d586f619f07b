"""Scenario generation: pure, seeded, and with the expected outcome of every reference.

Each reference plays one scenario. Its expected outcome is written here from the matching
rules (not by running the engine), so a run through the worker can be checked exactly.
Event times advance by ``step_ms`` per scenario from ``start_ms``; each record's arrival is
its event time plus a random delay of at most half the allowed lateness, and records are
emitted in arrival order, so each input is out of order by less than the allowed lateness.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streams.contract.decode import validate_record
from streams.contract.model import ExceptionKind, Flow, InputEvent, Rule, Side
from streams.engine.config import MatchConfig

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY", "SEK")

DEFAULT_MIX: dict[str, int] = {
    "exact": 30,
    "split": 10,
    "tolerance": 6,
    "amount_mismatch": 6,
    "currency_mismatch": 5,
    "missing_ledger": 6,
    "missing_payment": 6,
    "late": 6,
    "refund": 8,
    "redelivery": 6,
    "conflict": 4,
    "invalid": 7,
}


@dataclass(frozen=True, slots=True)
class SimRecord:
    side: Side
    key: bytes | None
    # A dict is a valid-shaped record (encoded as JSON or Avro); bytes are sent as they are.
    value: dict[str, Any] | bytes
    arrival_ms: int
    seq: int


@dataclass(frozen=True, slots=True)
class ExpectedMatch:
    reference: str
    flow: Flow
    rule: Rule
    currency: str
    payment_ids: tuple[str, ...]
    ledger_ids: tuple[str, ...]
    payment_amount_minor: int
    ledger_amount_minor: int
    resolves: ExceptionKind | None = None


@dataclass(frozen=True, slots=True)
class ExpectedException:
    reference: str
    flow: Flow
    kind: ExceptionKind
    resolved: bool
    currency: str
    ledger_currency: str | None
    payment_ids: tuple[str, ...]
    ledger_ids: tuple[str, ...]
    # DUPLICATE_CONFLICT only: (side, event_id, original hash, new hash)
    conflict: tuple[Side, str, bytes, bytes] | None = None


@dataclass(slots=True)
class Simulation:
    records: list[SimRecord] = field(default_factory=list)
    matches: list[ExpectedMatch] = field(default_factory=list)
    exceptions: list[ExpectedException] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)
    duplicates_dropped: int = 0
    scenarios: Counter[str] = field(default_factory=Counter)
    max_event_time_ms: int = START_MS
    # A heartbeat time on every partition of both inputs that makes every deadline fire.
    flush_time_ms: int = START_MS


class _Builder:
    def __init__(self, seed: int, config: MatchConfig, start_ms: int, step_ms: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.config = config
        self.clock = start_ms
        self.step_ms = step_ms
        self.sim = Simulation()
        self._seq = 0
        self._n = 0

    # -- records

    def _emit(
        self, side: Side, key: bytes | None, value: dict[str, Any] | bytes, event_time: int
    ) -> SimRecord:
        jitter = self.rng.randint(0, self.config.allowed_lateness_ms // 2)
        self._seq += 1
        record = SimRecord(side, key, value, event_time + jitter, self._seq)
        self.sim.records.append(record)
        self.sim.max_event_time_ms = max(self.sim.max_event_time_ms, event_time)
        return record

    def payment(
        self, ref: str, eid: str, amount: int, currency: str, t: int, kind: str = "payment"
    ) -> SimRecord:
        extra = {"kind": kind, "source": "psp-sim"}
        return self._event(Side.PAYMENT, ref, eid, amount, currency, t, extra)

    def ledger(
        self, ref: str, eid: str, amount: int, currency: str, t: int, direction: str = "credit"
    ) -> SimRecord:
        extra = {"direction": direction, "account": "ACC-001"}
        return self._event(Side.LEDGER, ref, eid, amount, currency, t, extra)

    def _event(
        self, side: Side, ref: str, eid: str, amount: int, currency: str, t: int,
        extra: dict[str, str],
    ) -> SimRecord:  # fmt: skip
        value: dict[str, object] = {
            "event_id": eid,
            "reference": ref,
            "amount_minor": amount,
            "currency": currency,
            "event_time": t,
            **extra,  # the side's own fields, after the common ones (the bytes stay the same)
        }
        return self._emit(side, ref.encode(), value, t)

    # -- helpers

    def reference(self, scenario: str) -> str:
        self._n += 1
        return f"{scenario[:4].upper()}-{self.seed}-{self._n:07d}"

    def delay(self) -> int:
        """A counterpart delay well inside the match window."""
        return self.rng.randint(1_000, max(1_001, min(self.config.match_window_ms // 4, 1_800_000)))

    def amount(self, low: int = 100) -> int:
        return self.rng.randint(low, 500_000)

    def currency(self) -> str:
        return self.rng.choice(CURRENCIES)

    def tol(self, payment_sum: int) -> int:
        return self.config.tolerance(payment_sum)

    def split_amount(self, total: int, parts: int, min_part: int) -> list[int]:
        cuts = sorted(self.rng.sample(range(1, total // min_part), parts - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, total // min_part], strict=True)]
        amounts = [s * min_part for s in sizes]
        amounts[-1] += total - sum(amounts)
        return amounts

    def expect_match(
        self,
        ref: str,
        flow: Flow,
        rule: Rule,
        cur: str,
        pays: list[tuple[str, int]],
        leds: list[tuple[str, int]],
        resolves: ExceptionKind | None = None,
    ) -> None:
        self.sim.matches.append(
            ExpectedMatch(
                ref,
                flow,
                rule,
                cur,
                tuple(e for e, _ in pays),
                tuple(e for e, _ in leds),
                sum(a for _, a in pays),
                sum(a for _, a in leds),
                resolves,
            )
        )

    def expect_exception(
        self,
        ref: str,
        flow: Flow,
        kind: ExceptionKind,
        cur: str,
        pays: list[str],
        leds: list[str],
        *,
        resolved: bool = False,
        ledger_currency: str | None = None,
    ) -> None:
        self.sim.exceptions.append(
            ExpectedException(
                ref, flow, kind, resolved, cur, ledger_currency, tuple(pays), tuple(leds)
            )
        )


def _content_hash(record: SimRecord) -> bytes:
    assert isinstance(record.value, dict)
    item = validate_record(dict(record.value), record.side, record.key, 0)
    assert isinstance(item, InputEvent), item
    return item.content_hash


# Each scenario writes its records and its expected outcome. ``t`` is the scenario's start.


def _exact(b: _Builder, t: int, *, refund: bool = False) -> None:
    name = "refund" if refund else "exact"
    ref, cur, amount = b.reference(name), b.currency(), b.amount()
    flow = Flow.REFUND if refund else Flow.PAYMENT
    b.payment(ref, f"{ref}-p1", amount, cur, t, kind="refund" if refund else "payment")
    b.ledger(
        ref, f"{ref}-l1", amount, cur, t + b.delay(), direction="debit" if refund else "credit"
    )
    b.expect_match(ref, flow, Rule.EXACT, cur, [(f"{ref}-p1", amount)], [(f"{ref}-l1", amount)])


def _split(b: _Builder, t: int) -> None:
    ref, cur = b.reference("split"), b.currency()
    parts = b.rng.randint(2, 4)
    min_part = b.tol(500_000) + 100  # every partial sum stays outside the tolerance
    total = b.rng.randint(parts * min_part * 4, parts * min_part * 40)
    amounts = b.split_amount(total, parts, min_part)
    many_ledger = b.rng.random() < 0.5
    times = sorted(t + b.delay() for _ in amounts)
    if many_ledger:
        b.payment(ref, f"{ref}-p1", total, cur, t)
        leds = [(f"{ref}-l{i + 1}", a) for i, a in enumerate(amounts)]
        for (eid, a), ti in zip(leds, times, strict=True):
            b.ledger(ref, eid, a, cur, ti)
        b.expect_match(ref, Flow.PAYMENT, Rule.SPLIT, cur, [(f"{ref}-p1", total)], leds)
    else:
        b.ledger(ref, f"{ref}-l1", total, cur, t)
        pays = [(f"{ref}-p{i + 1}", a) for i, a in enumerate(amounts)]
        for (eid, a), ti in zip(pays, times, strict=True):
            b.payment(ref, eid, a, cur, ti)
        b.expect_match(ref, Flow.PAYMENT, Rule.SPLIT, cur, pays, [(f"{ref}-l1", total)])


def _tolerance(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("tolerance"), b.currency(), b.amount(1_000)
    tol = b.tol(amount)
    if tol < 1:
        _exact(b, t)
        return
    ledger = amount + b.rng.choice((-1, 1)) * b.rng.randint(1, tol)
    b.payment(ref, f"{ref}-p1", amount, cur, t)
    b.ledger(ref, f"{ref}-l1", ledger, cur, t + b.delay())
    b.expect_match(
        ref, Flow.PAYMENT, Rule.TOLERANCE, cur, [(f"{ref}-p1", amount)], [(f"{ref}-l1", ledger)]
    )


def _amount_mismatch(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("amount_mismatch"), b.currency(), b.amount(10_000)
    ledger = amount - b.tol(amount) - b.rng.randint(1, amount // 2)
    b.payment(ref, f"{ref}-p1", amount, cur, t)
    b.ledger(ref, f"{ref}-l1", ledger, cur, t + b.delay())
    b.expect_exception(
        ref, Flow.PAYMENT, ExceptionKind.AMOUNT_MISMATCH, cur, [f"{ref}-p1"], [f"{ref}-l1"]
    )


def _currency_mismatch(b: _Builder, t: int) -> None:
    ref, amount = b.reference("currency_mismatch"), b.amount()
    pay_cur, led_cur = b.rng.sample(CURRENCIES, 2)
    b.payment(ref, f"{ref}-p1", amount, pay_cur, t)
    b.ledger(ref, f"{ref}-l1", amount, led_cur, t + b.delay())
    b.expect_exception(
        ref,
        Flow.PAYMENT,
        ExceptionKind.CURRENCY_MISMATCH,
        pay_cur,
        [f"{ref}-p1"],
        [f"{ref}-l1"],
        ledger_currency=led_cur,
    )


def _missing_ledger(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("missing_ledger"), b.currency(), b.amount()
    b.payment(ref, f"{ref}-p1", amount, cur, t)
    b.expect_exception(ref, Flow.PAYMENT, ExceptionKind.MISSING_LEDGER, cur, [f"{ref}-p1"], [])


def _missing_payment(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("missing_payment"), b.currency(), b.amount()
    b.ledger(ref, f"{ref}-l1", amount, cur, t)
    b.expect_exception(ref, Flow.PAYMENT, ExceptionKind.MISSING_PAYMENT, cur, [], [f"{ref}-l1"])


def _late(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("late"), b.currency(), b.amount()
    b.payment(ref, f"{ref}-p1", amount, cur, t)
    late_t = t + b.config.match_window_ms + b.rng.randint(60_000, 600_000)
    b.ledger(ref, f"{ref}-l1", amount, cur, late_t)
    b.expect_exception(
        ref, Flow.PAYMENT, ExceptionKind.MISSING_LEDGER, cur, [f"{ref}-p1"], [], resolved=True
    )
    b.expect_match(
        ref,
        Flow.PAYMENT,
        Rule.LATE,
        cur,
        [(f"{ref}-p1", amount)],
        [(f"{ref}-l1", amount)],
        resolves=ExceptionKind.MISSING_LEDGER,
    )


def _redelivery(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("redelivery"), b.currency(), b.amount()
    p = b.payment(ref, f"{ref}-p1", amount, cur, t)
    l_time = t + b.delay()
    led = b.ledger(ref, f"{ref}-l1", amount, cur, l_time)
    again = b.rng.choice((p, led))
    assert isinstance(again.value, dict)
    b._emit(again.side, again.key, dict(again.value), int(again.value["event_time"]))
    b.sim.duplicates_dropped += 1
    b.expect_match(
        ref, Flow.PAYMENT, Rule.EXACT, cur, [(f"{ref}-p1", amount)], [(f"{ref}-l1", amount)]
    )


def _conflict(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("conflict"), b.currency(), b.amount()
    original = b.payment(ref, f"{ref}-p1", amount, cur, t)
    b.ledger(ref, f"{ref}-l1", amount, cur, t + b.delay())
    assert isinstance(original.value, dict)
    changed = {**original.value, "amount_minor": amount + 1}
    # Emitted after the original in the payment stream, so the original is seen first.
    b._seq += 1
    conflicting = SimRecord(Side.PAYMENT, original.key, changed, original.arrival_ms + 1, b._seq)
    b.sim.records.append(conflicting)
    b.expect_match(
        ref, Flow.PAYMENT, Rule.EXACT, cur, [(f"{ref}-p1", amount)], [(f"{ref}-l1", amount)]
    )
    conflict = (Side.PAYMENT, f"{ref}-p1", _content_hash(original), _content_hash(conflicting))
    b.sim.exceptions.append(
        ExpectedException(
            ref,
            Flow.PAYMENT,
            ExceptionKind.DUPLICATE_CONFLICT,
            False,
            cur,
            None,
            (f"{ref}-p1",),
            (),
            conflict,
        )
    )


def _invalid(b: _Builder, t: int) -> None:
    ref, cur, amount = b.reference("invalid"), b.currency(), b.amount()
    side = b.rng.choice((Side.PAYMENT, Side.LEDGER))
    good: dict[str, Any] = {
        "event_id": f"{ref}-x1",
        "reference": ref,
        "amount_minor": amount,
        "currency": cur,
        "event_time": t,
    }
    good.update({"kind": "payment"} if side is Side.PAYMENT else {"direction": "credit"})
    reason = b.rng.choice(
        (
            "BAD_JSON",
            "UNKNOWN_CURRENCY",
            "BAD_AMOUNT",
            "BAD_REFERENCE",
            "KEY_MISMATCH",
            "MISSING_FIELD",
        )
    )
    key: bytes | None = ref.encode()
    value: dict[str, Any] | bytes
    if reason == "BAD_JSON":
        value = b'{"event_id": "' + ref.encode() + b'", "amount_minor": 1'
    elif reason == "UNKNOWN_CURRENCY":
        value = {**good, "currency": "QQQ"}
    elif reason == "BAD_AMOUNT":
        value = {**good, "amount_minor": -amount}
    elif reason == "BAD_REFERENCE":
        long_ref = ref + "-" + "x" * 130
        value, key = {**good, "reference": long_ref}, long_ref.encode()
    elif reason == "KEY_MISMATCH":
        value = {**good}
        key = (ref + "-other").encode()
    else:
        value = {k: v for k, v in good.items() if k != "currency"}
    b._emit(side, key, value, t)
    b.sim.dead_letters[reason] += 1


SCENARIOS = {
    "exact": _exact,
    "split": _split,
    "tolerance": _tolerance,
    "amount_mismatch": _amount_mismatch,
    "currency_mismatch": _currency_mismatch,
    "missing_ledger": _missing_ledger,
    "missing_payment": _missing_payment,
    "late": _late,
    "refund": lambda b, t: _exact(b, t, refund=True),
    "redelivery": _redelivery,
    "conflict": _conflict,
    "invalid": _invalid,
}


def simulate(
    count: int,
    *,
    seed: int = 42,
    config: MatchConfig | None = None,
    mix: dict[str, int] | None = None,
    start_ms: int = START_MS,
    step_ms: int = 30_000,
) -> Simulation:
    """At least ``count`` input records (events, duplicates and invalid ones), in emission order."""
    b = _Builder(seed, config or MatchConfig(), start_ms, step_ms)
    weights = mix or DEFAULT_MIX
    names = [n for n, w in weights.items() if w > 0]
    # Every scenario at least once, then a seeded mix.
    queue = list(names)
    while len(b.sim.records) < count or queue:
        name = queue.pop(0) if queue else b.rng.choices(names, [weights[n] for n in names])[0]
        SCENARIOS[name](b, b.clock)
        b.sim.scenarios[name] += 1
        b.clock += b.step_ms
    b.sim.records.sort(key=lambda r: (r.arrival_ms, r.seq))
    b.sim.flush_time_ms = (
        b.sim.max_event_time_ms + b.config.match_window_ms + b.config.allowed_lateness_ms + 60_000
    )
    return b.sim

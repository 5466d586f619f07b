"""The ground truth of a simulation: every expected match and exception, by id, and a checker.

Ids are derived from the expected members with the same id functions the spec defines
(:mod:`streams.engine.ids`), so a match found with the right id has the right members.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.contract.model import (
    DeadLetter,
    ExceptionKind,
    ExceptionRecord,
    ExceptionStatus,
    Flow,
    MatchRecord,
    Rule,
    Side,
)
from streams.engine.ids import conflict_id, exception_id, match_id
from streams.simulate.scenarios import ExpectedException, ExpectedMatch, Simulation


@dataclass(frozen=True, slots=True)
class Truth:
    matches: dict[str, dict[str, Any]]
    exceptions: dict[str, dict[str, Any]]
    dead_letters: dict[str, int]
    duplicates_dropped: int
    scenarios: dict[str, int]
    flush_time_ms: int
    inputs: int

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "matches": self.matches,
                "exceptions": self.exceptions,
                "dead_letters": self.dead_letters,
                "duplicates_dropped": self.duplicates_dropped,
                "scenarios": self.scenarios,
                "flush_time_ms": self.flush_time_ms,
                "inputs": self.inputs,
            },
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def load(cls, path: Path) -> Truth:
        raw = orjson.loads(path.read_bytes())
        return cls(**raw)


def _exception_id(e: ExpectedException) -> str:
    if e.conflict is not None:
        return conflict_id(*e.conflict)
    return exception_id(
        kind=e.kind,
        reference=e.reference,
        flow=e.flow,
        currency=e.currency,
        ledger_currency=e.ledger_currency,
        payment_ids=e.payment_ids,
        ledger_ids=e.ledger_ids,
    )


def _resolved_exception_id(m: ExpectedMatch) -> str | None:
    if m.resolves is None:
        return None
    # A late match resolves the timeout raised over the members present at the deadline:
    # the side that was there alone.
    pays, leds = (
        (m.payment_ids, ()) if m.resolves is ExceptionKind.MISSING_LEDGER else ((), m.ledger_ids)
    )
    return exception_id(
        kind=m.resolves,
        reference=m.reference,
        flow=m.flow,
        currency=m.currency,
        ledger_currency=None,
        payment_ids=pays,
        ledger_ids=leds,
    )


def truth_of(sim: Simulation) -> Truth:
    matches = {
        match_id(m.reference, m.flow, m.currency, m.payment_ids, m.ledger_ids): {
            "reference": m.reference,
            "flow": m.flow.value,
            "rule": m.rule.value,
            "currency": m.currency,
            "payment_event_ids": sorted(m.payment_ids),
            "ledger_event_ids": sorted(m.ledger_ids),
            "payment_amount_minor": m.payment_amount_minor,
            "ledger_amount_minor": m.ledger_amount_minor,
            "exception_id": _resolved_exception_id(m),
        }
        for m in sim.matches
    }
    exceptions = {
        _exception_id(e): {
            "reference": e.reference,
            "flow": e.flow.value,
            "kind": e.kind.value,
            "status": (ExceptionStatus.RESOLVED if e.resolved else ExceptionStatus.OPEN).value,
            "payment_event_ids": sorted(e.payment_ids),
            "ledger_event_ids": sorted(e.ledger_ids),
        }
        for e in sim.exceptions
    }
    return Truth(
        matches=matches,
        exceptions=exceptions,
        dead_letters=dict(sim.dead_letters),
        duplicates_dropped=sim.duplicates_dropped,
        scenarios=dict(sim.scenarios),
        flush_time_ms=sim.flush_time_ms,
        inputs=len(sim.records),
    )


def match_fields(m: MatchRecord) -> dict[str, Any]:
    return {
        "reference": m.reference,
        "flow": m.flow.value,
        "rule": m.rule.value,
        "currency": m.currency,
        "payment_event_ids": sorted(m.payment_event_ids),
        "ledger_event_ids": sorted(m.ledger_event_ids),
        "payment_amount_minor": m.payment_amount_minor,
        "ledger_amount_minor": m.ledger_amount_minor,
        "exception_id": m.exception_id,
    }


def exception_fields(e: ExceptionRecord, resolved: bool) -> dict[str, Any]:
    return {
        "reference": e.reference,
        "flow": e.flow.value,
        "kind": e.kind.value,
        "status": (ExceptionStatus.RESOLVED if resolved else ExceptionStatus.OPEN).value,
        "payment_event_ids": sorted(e.payment_event_ids),
        "ledger_event_ids": sorted(e.ledger_event_ids),
    }


@dataclass(slots=True)
class Verdict:
    problems: list[str] = field(default_factory=list)
    matches: int = 0
    exceptions: int = 0
    dead_letters: int = 0
    duplicate_records: int = 0  # the same id seen more than once (at-least-once re-emission)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(
    truth: Truth,
    matches: Iterable[MatchRecord],
    exceptions: Iterable[ExceptionRecord],
    dead_letters: Iterable[DeadLetter],
    *,
    limit: int = 20,
) -> Verdict:
    """Compare outputs with the truth: same ids, same fields, final exception status."""
    v = Verdict()
    got_matches: dict[str, dict[str, Any]] = {}
    for m in matches:
        fields = match_fields(m)
        if m.match_id in got_matches:
            v.duplicate_records += 1
            if got_matches[m.match_id] != fields:
                v.problems.append(f"match {m.match_id} emitted twice with different content")
        got_matches[m.match_id] = fields
    resolved: set[str] = set()
    latest: dict[str, ExceptionRecord] = {}
    seen_status: Counter[tuple[str, str]] = Counter()
    for e in exceptions:
        seen_status[(e.exception_id, e.status.value)] += 1
        if e.status is ExceptionStatus.RESOLVED:
            resolved.add(e.exception_id)
        latest[e.exception_id] = e
    v.duplicate_records += sum(n - 1 for n in seen_status.values() if n > 1)
    got_exceptions = {i: exception_fields(e, i in resolved) for i, e in latest.items()}
    # A dead letter's identity is its source position; at-least-once may repeat it.
    distinct_dead = {(d.source_topic, d.partition, d.offset): d.reason for d in dead_letters}
    got_dead = Counter(distinct_dead.values())

    for name, want, got in (
        ("match", truth.matches, got_matches),
        ("exception", truth.exceptions, got_exceptions),
    ):
        for i in sorted(want.keys() - got.keys())[:limit]:
            v.problems.append(f"missing {name} {i}: {want[i]}")
        for i in sorted(got.keys() - want.keys())[:limit]:
            v.problems.append(f"unexpected {name} {i}: {got[i]}")
        for i in sorted(want.keys() & got.keys()):
            if want[i] != got[i] and len(v.problems) < limit * 3:
                v.problems.append(f"wrong {name} {i}: want {want[i]}, got {got[i]}")
    if dict(got_dead) != truth.dead_letters:
        v.problems.append(
            f"dead letters by reason: want {truth.dead_letters}, got {dict(got_dead)}"
        )
    v.matches, v.exceptions, v.dead_letters = (
        len(got_matches),
        len(got_exceptions),
        sum(got_dead.values()),
    )
    return v


def summarize(truth: Truth) -> dict[str, Counter[str]]:
    rules = Counter(m["rule"] for m in truth.matches.values())
    kinds = Counter(f"{e['kind']}/{e['status']}" for e in truth.exceptions.values())
    return {"rules": rules, "exceptions": kinds, "dead_letters": Counter(truth.dead_letters)}


__all__ = ["Flow", "Rule", "Side", "Truth", "Verdict", "check", "summarize", "truth_of"]

"""``recon verify``: the daily trial balance of inputs against results.

Every input record must be in exactly one place: a match, an open exception, the workers'
state (an open group, or an event still in the event-time buffer), a dead letter, or, for a
repeated event id, the duplicates (same content) or a DUPLICATE_CONFLICT exception (other
content). Rows must be explained: a ``late`` match by the exception it resolves, a resolved
exception by exactly one late match, every amount by the inputs it lists, every rule by its
amounts, and each reference's sums by its inputs.

This module is the accounting, pure: :mod:`streams.ops.verify_sources` reads Kafka, PostgreSQL
and the workers' state changelog into the values below, and the command prints the verdict.
An event's identity is (partition, side, event id): each partition's engine keeps its own
duplicate index, so only there is a repeated id a duplicate.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streams.contract.model import InputEvent, Side
from streams.engine.config import MatchConfig
from streams.engine.ids import conflict_id
from streams.worker.partitioning import partition_for

EventKey = tuple[int, Side, str]  # partition, side, event id
Coordinates = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True, slots=True)
class InputRow:
    """One input record as the worker would read it."""

    topic: str
    partition: int
    offset: int
    event: InputEvent | None  # None: a heartbeat or a record the worker rejects
    rejected: str | None = None  # why the worker rejects it
    heartbeat: bool = False


@dataclass(frozen=True, slots=True)
class MatchRow:
    match_id: str
    reference: str
    rule: str
    currency: str
    payment_amount: int
    ledger_amount: int
    difference: int
    payment_ids: tuple[str, ...]
    ledger_ids: tuple[str, ...]
    first_event_time_ms: int
    exception_id: str | None


@dataclass(frozen=True, slots=True)
class ExceptionRow:
    exception_id: str
    reference: str
    kind: str
    status: str
    payment_amount: int
    ledger_amount: int
    payment_ids: tuple[str, ...]
    ledger_ids: tuple[str, ...]
    raised_at_ms: int


@dataclass(frozen=True, slots=True)
class StateMember:
    """An event the workers' state holds and no output lists yet."""

    partition: int
    side: Side
    event_id: str
    amount: int
    where: str  # "open group", "buffered" or "raised group" (joined after the raising)


@dataclass(frozen=True, slots=True)
class Finding:
    problem: str
    subject: str  # the event or the row, by name
    detail: str = ""


@dataclass(slots=True)
class Tally:
    inputs: int = 0
    heartbeats: int = 0
    matched: int = 0
    in_exceptions: int = 0
    in_state: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_letters: int = 0
    outside_window: int = 0
    matches: int = 0
    exceptions: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    tally: Tally
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True)
class Window:
    """Event times checked, ``[start_ms, end_ms)``; None: unbounded."""

    start_ms: int | None = None
    end_ms: int | None = None

    def holds(self, t: int) -> bool:
        return (self.start_ms is None or t >= self.start_ms) and (
            self.end_ms is None or t < self.end_ms
        )

    @property
    def whole(self) -> bool:
        return self.start_ms is None and self.end_ms is None


_CONFLICT = "DUPLICATE_CONFLICT"


def _name(ev: InputEvent, topic: str, partition: int) -> str:
    return (
        f"{ev.side.value} event {ev.event_id!r} (reference {ev.reference!r}, "
        f"{topic}[{partition}]@{ev.offset})"
    )


def verify(
    inputs: Iterable[InputRow],
    matches: Sequence[MatchRow],
    exceptions: Sequence[ExceptionRow],
    dead_letters: Iterable[Coordinates],
    state: Iterable[StateMember],
    *,
    partitions: int,
    config: MatchConfig,
    window: Window = Window(),
    later_ids: Iterable[EventKey] = (),
) -> Verdict:
    """``inputs`` in offset order per topic-partition; ``dead_letters`` the source coordinates
    of the worker's dead letters; ``later_ids`` events read after the check's cut, which rows
    and state may already hold but which are not checked."""
    tally = Tally(matches=len(matches), exceptions=len(exceptions))
    findings: list[Finding] = []
    dead = set(dead_letters)
    dead_used: set[Coordinates] = set()
    exception_by_id = {x.exception_id: x for x in exceptions}
    first: dict[EventKey, tuple[InputEvent, str, int]] = {}
    in_window: set[EventKey] = set()

    for row in inputs:
        tally.inputs += 1
        where = (row.topic, row.partition, row.offset)
        if where in dead:
            tally.dead_letters += 1
            dead_used.add(where)
            continue
        if row.heartbeat:
            tally.heartbeats += 1
            continue
        ev = row.event
        if ev is None:
            findings.append(
                Finding(
                    "rejected input with no dead letter",
                    f"{row.topic}[{row.partition}]@{row.offset}",
                    row.rejected or "",
                )
            )
            continue
        key = (row.partition, ev.side, ev.event_id)
        seen = first.get(key)
        if seen is None:
            first[key] = (ev, row.topic, row.partition)
            if window.holds(ev.event_time_ms):
                in_window.add(key)
            else:
                tally.outside_window += 1
            continue
        if not window.holds(ev.event_time_ms):
            tally.outside_window += 1
        elif seen[0].content_hash == ev.content_hash:
            tally.duplicates += 1
        else:
            xid = conflict_id(ev.side, ev.event_id, seen[0].content_hash, ev.content_hash)
            if xid in exception_by_id:
                tally.conflicts += 1
            else:
                findings.append(
                    Finding(
                        "conflicting duplicate with no DUPLICATE_CONFLICT exception",
                        _name(ev, row.topic, row.partition),
                        f"expected exception {xid}",
                    )
                )

    # Each place an event id is listed in, and whether that row is in the window.
    places: defaultdict[EventKey, list[tuple[str, bool]]] = defaultdict(list)
    for m in matches:
        p = partition_for(m.reference.encode(), partitions)
        shown = window.holds(m.first_event_time_ms)
        for side, ids in ((Side.PAYMENT, m.payment_ids), (Side.LEDGER, m.ledger_ids)):
            for i in ids:
                places[(p, side, i)].append((f"match {m.match_id}", shown))
    for x in exceptions:
        if x.status != "open" or x.kind == _CONFLICT:
            continue  # a resolved exception's events are in its late match
        p = partition_for(x.reference.encode(), partitions)
        shown = window.holds(x.raised_at_ms)
        for side, ids in ((Side.PAYMENT, x.payment_ids), (Side.LEDGER, x.ledger_ids)):
            for i in ids:
                places[(p, side, i)].append((f"exception {x.exception_id}", shown))
    state_amounts: Counter[EventKey] = Counter()
    for s in state:
        key = (s.partition, s.side, s.event_id)
        places[key].append((f"{s.where} in partition {s.partition}", True))
        state_amounts[key] += s.amount

    for key in sorted(in_window, key=lambda k: (k[0], k[1].value, k[2])):
        ev, topic, partition = first[key]
        found = [label for label, _ in places.get(key, [])]
        if not found:
            findings.append(Finding("in no place", _name(ev, topic, partition)))
        elif len(found) > 1:
            findings.append(
                Finding("counted more than once", _name(ev, topic, partition), "; ".join(found))
            )
        elif found[0].startswith("match "):
            tally.matched += 1
        elif found[0].startswith("exception "):
            tally.in_exceptions += 1
        else:
            tally.in_state += 1

    later = set(later_ids)
    known = set(first) | later
    for key, listed in places.items():
        in_view = [label for label, in_window in listed if in_window]
        if key not in known and in_view:
            findings.append(
                Finding(
                    "refers to an event no input has",
                    "; ".join(in_view),
                    f"{key[1].value} event {key[2]!r} in partition {key[0]}",
                )
            )
    for coords in sorted(dead - dead_used):
        findings.append(
            Finding("dead letter of no input record", f"{coords[0]}[{coords[1]}]@{coords[2]}")
        )

    findings += _check_rows(matches, exceptions, first, partitions, config, window)
    if window.whole:
        # A row that also lists an event after the cut cannot balance against the inputs read.
        rows: list[MatchRow | ExceptionRow] = [*matches, *exceptions]
        unsettled = {
            row.reference
            for row in rows
            for side, ids in ((Side.PAYMENT, row.payment_ids), (Side.LEDGER, row.ledger_ids))
            if any(
                (partition_for(row.reference.encode(), partitions), side, i) in later for i in ids
            )
        }
        findings += _check_references(matches, exceptions, first, state_amounts, unsettled)
    return Verdict(tally, findings)


def _amount(first: dict[EventKey, tuple[InputEvent, str, int]], key: EventKey) -> int | None:
    seen = first.get(key)
    return seen[0].amount_minor if seen is not None else None


def _sum(
    first: dict[EventKey, tuple[InputEvent, str, int]], p: int, side: Side, ids: Sequence[str]
) -> int | None:
    amounts = [_amount(first, (p, side, i)) for i in ids]
    return None if any(a is None for a in amounts) else sum(a for a in amounts if a is not None)


def _check_rows(
    matches: Sequence[MatchRow],
    exceptions: Sequence[ExceptionRow],
    first: dict[EventKey, tuple[InputEvent, str, int]],
    partitions: int,
    config: MatchConfig,
    window: Window,
) -> list[Finding]:
    out: list[Finding] = []
    by_id = {x.exception_id: x for x in exceptions}
    resolving: defaultdict[str, list[str]] = defaultdict(list)
    for m in matches:
        if m.exception_id is not None:
            resolving[m.exception_id].append(m.match_id)
        if not window.holds(m.first_event_time_ms):
            continue
        row = f"match {m.match_id} (reference {m.reference!r}, rule {m.rule})"
        p = partition_for(m.reference.encode(), partitions)
        pay = _sum(first, p, Side.PAYMENT, m.payment_ids)
        led = _sum(first, p, Side.LEDGER, m.ledger_ids)
        if pay is not None and pay != m.payment_amount:
            out.append(Finding("amounts", row, f"payment sum {m.payment_amount}, inputs {pay}"))
        if led is not None and led != m.ledger_amount:
            out.append(Finding("amounts", row, f"ledger sum {m.ledger_amount}, inputs {led}"))
        if m.difference != m.ledger_amount - m.payment_amount:
            out.append(
                Finding("amounts", row, f"difference {m.difference} is not ledger - payment")
            )
        out += _check_rule(m, row, config)
        if m.rule == "late":
            x = by_id.get(m.exception_id or "")
            if x is None:
                out.append(Finding("late match without its exception", row, str(m.exception_id)))
            elif x.status != "resolved":
                out.append(Finding("late match of an exception still open", row, x.exception_id))
        elif m.exception_id is not None:
            out.append(Finding("match names an exception but is not late", row, m.exception_id))
    for x in exceptions:
        if not window.holds(x.raised_at_ms):
            continue
        row = f"exception {x.exception_id} (reference {x.reference!r}, {x.kind}, {x.status})"
        late = resolving.get(x.exception_id, [])
        if x.status == "resolved" and len(late) != 1:
            problem = "resolved twice" if late else "resolved with no late match"
            out.append(Finding(problem, row, ", ".join(late)))
        if x.kind == _CONFLICT:
            continue  # its amount is the conflicting copy's, not the accepted event's
        p = partition_for(x.reference.encode(), partitions)
        pay = _sum(first, p, Side.PAYMENT, x.payment_ids)
        led = _sum(first, p, Side.LEDGER, x.ledger_ids)
        if pay is not None and pay != x.payment_amount:
            out.append(Finding("amounts", row, f"payment sum {x.payment_amount}, inputs {pay}"))
        if led is not None and led != x.ledger_amount:
            out.append(Finding("amounts", row, f"ledger sum {x.ledger_amount}, inputs {led}"))
    return out


def _check_rule(m: MatchRow, row: str, config: MatchConfig) -> list[Finding]:
    diff = abs(m.difference)
    tolerance = config.tolerance(m.payment_amount)
    one_to_one = len(m.payment_ids) == 1 and len(m.ledger_ids) == 1
    wrong = {
        "exact": diff != 0 or not one_to_one,
        "split": diff != 0 or one_to_one,
        "tolerance": diff == 0 or diff > tolerance,
        "late": diff > tolerance,
    }.get(m.rule, True)
    if wrong:
        return [
            Finding(
                "rule does not fit the amounts",
                row,
                f"difference {m.difference}, tolerance {tolerance}",
            )
        ]
    return []


def _check_references(
    matches: Sequence[MatchRow],
    exceptions: Sequence[ExceptionRow],
    first: dict[EventKey, tuple[InputEvent, str, int]],
    state_amounts: Counter[EventKey],
    unsettled: set[str],
) -> list[Finding]:
    """Per reference and side: the inputs' sum equals the sum over the places they went."""
    inputs: Counter[tuple[str, Side]] = Counter()
    for ev, _, _ in first.values():
        inputs[(ev.reference, ev.side)] += ev.amount_minor
    results: Counter[tuple[str, Side]] = Counter()
    for m in matches:
        results[(m.reference, Side.PAYMENT)] += m.payment_amount
        results[(m.reference, Side.LEDGER)] += m.ledger_amount
    for x in exceptions:
        if x.status == "open" and x.kind != _CONFLICT:
            results[(x.reference, Side.PAYMENT)] += x.payment_amount
            results[(x.reference, Side.LEDGER)] += x.ledger_amount
    references = {ev.reference: ev for ev, _, _ in first.values()}
    for (p, side, event_id), amount in state_amounts.items():
        seen = first.get((p, side, event_id))
        if seen is not None:
            results[(seen[0].reference, side)] += amount
    out = []
    for key in sorted(set(inputs) | set(results), key=lambda k: (k[0], k[1].value)):
        if key[0] in references and key[0] not in unsettled and inputs[key] != results[key]:
            out.append(
                Finding(
                    "reference does not balance",
                    f"reference {key[0]!r} ({key[1].value})",
                    f"inputs sum to {inputs[key]}, its matches, open exceptions and open "
                    f"events to {results[key]}",
                )
            )
    return out


def render(v: Verdict, limit: int = 50) -> str:
    t = v.tally
    rows = [
        ("input records", t.inputs),
        ("  in a match", t.matched),
        ("  in an open exception", t.in_exceptions),
        ("  open in the workers' state", t.in_state),
        ("  duplicates (same content)", t.duplicates),
        ("  conflicting duplicates", t.conflicts),
        ("  dead letters", t.dead_letters),
        ("  heartbeats", t.heartbeats),
        ("  outside the window", t.outside_window),
        ("match rows", t.matches),
        ("exception rows", t.exceptions),
        ("problems", len(v.findings)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {n:>12,}" for name, n in rows]
    if v.findings:
        lines.append("")
        for f in v.findings[:limit]:
            lines.append(f"FAIL {f.problem}: {f.subject}" + (f" ({f.detail})" if f.detail else ""))
        if len(v.findings) > limit:
            lines.append(f"... and {len(v.findings) - limit} more")
    else:
        lines.append("\nOK: every input is in exactly one place and every row balances")
    return "\n".join(lines)

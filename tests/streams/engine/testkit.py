"""Builders for engine tests, and an independent recomputation of the derived ids."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b, sha256

from streams.contract.model import (
    ExceptionKind,
    ExceptionRecord,
    Flow,
    Heartbeat,
    InputEvent,
    MatchRecord,
    Side,
)
from streams.engine import EngineOutput, MatchConfig, MatchingEngine
from streams.state.base import KeyValueStore
from streams.state.memory import MemoryStore

T0 = 1_700_000_000_000
MIN = 60_000
HOUR = 3_600_000

Item = InputEvent | Heartbeat


def content_hash(*parts: object) -> bytes:
    return sha256(repr(parts).encode()).digest()


def _canonical(parts: list[object]) -> str:
    raw = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
    return blake2b(raw, digest_size=16).hexdigest()


def expected_match_id(
    reference: str, flow: Flow, currency: str, pids: Iterable[str], lids: Iterable[str]
) -> str:
    return _canonical(["match", reference, flow.value, currency, sorted(pids), sorted(lids)])


def expected_exception_id(
    kind: ExceptionKind,
    reference: str,
    flow: Flow,
    currency: str,
    pids: Iterable[str],
    lids: Iterable[str],
    ledger_currency: str | None = None,
) -> str:
    return _canonical(
        [
            "exception",
            kind.value,
            reference,
            flow.value,
            currency,
            ledger_currency,
            sorted(pids),
            sorted(lids),
        ]
    )


@dataclass
class Feed:
    """Two input streams with offsets assigned per side in the order items are added."""

    items: list[Item] = field(default_factory=list)
    next_offset: dict[Side, int] = field(default_factory=lambda: {Side.PAYMENT: 0, Side.LEDGER: 0})

    def _offset(self, side: Side) -> int:
        off = self.next_offset[side]
        self.next_offset[side] = off + 1
        return off

    def event(
        self,
        side: Side,
        event_id: str,
        amount: int,
        t: int,
        *,
        ref: str = "R1",
        cur: str = "EUR",
        flow: Flow = Flow.PAYMENT,
        variant: str = "",
    ) -> InputEvent:
        ev = InputEvent(
            side=side,
            event_id=event_id,
            reference=ref,
            amount_minor=amount,
            currency=cur,
            event_time_ms=t,
            flow=flow,
            content_hash=content_hash(side, event_id, ref, amount, cur, t, flow, variant),
            offset=self._offset(side),
        )
        self.items.append(ev)
        return ev

    def pay(self, event_id: str, amount: int, t: int, **kw: object) -> InputEvent:
        return self.event(Side.PAYMENT, event_id, amount, t, **kw)  # type: ignore[arg-type]

    def led(self, event_id: str, amount: int, t: int, **kw: object) -> InputEvent:
        return self.event(Side.LEDGER, event_id, amount, t, **kw)  # type: ignore[arg-type]

    def again(self, ev: InputEvent) -> InputEvent:
        """The same event redelivered upstream: same content, a new offset."""
        copy = InputEvent(
            ev.side, ev.event_id, ev.reference, ev.amount_minor, ev.currency,
            ev.event_time_ms, ev.flow, ev.content_hash, self._offset(ev.side),
        )  # fmt: skip
        self.items.append(copy)
        return copy

    def heartbeat(self, side: Side, t: int) -> Heartbeat:
        hb = Heartbeat(side=side, event_time_ms=t, offset=self._offset(side))
        self.items.append(hb)
        return hb

    def flush(self, t: int) -> None:
        """Heartbeats on both sides at ``t``: releases everything before ``t - lateness``."""
        self.heartbeat(Side.PAYMENT, t)
        self.heartbeat(Side.LEDGER, t)


def run(
    items: Sequence[Item],
    config: MatchConfig | None = None,
    store: KeyValueStore | None = None,
    partition: int = 0,
) -> tuple[EngineOutput, KeyValueStore, MatchingEngine]:
    engine = MatchingEngine(config or MatchConfig())
    store = store if store is not None else MemoryStore()
    out = EngineOutput()
    for item in items:
        out.extend(engine.on_item(store, partition, item))
    return out, store, engine


def match(
    *,
    rule: str,
    pays: Sequence[InputEvent],
    leds: Sequence[InputEvent],
    matched_at: int,
    exception_id: str | None = None,
) -> MatchRecord:
    """The expected match, from the member events (in applied order) and the hand-set rule."""
    from streams.contract.model import Rule

    ref, flow, cur = (pays or leds)[0].reference, (pays or leds)[0].flow, (pays or leds)[0].currency
    pids = tuple(e.event_id for e in pays)
    lids = tuple(e.event_id for e in leds)
    ps, ls = sum(e.amount_minor for e in pays), sum(e.amount_minor for e in leds)
    return MatchRecord(
        match_id=expected_match_id(ref, flow, cur, pids, lids),
        reference=ref,
        flow=flow,
        rule=Rule(rule),
        currency=cur,
        payment_amount_minor=ps,
        ledger_amount_minor=ls,
        difference_minor=ls - ps,
        payment_event_ids=pids,
        ledger_event_ids=lids,
        first_event_time_ms=min(e.event_time_ms for e in (*pays, *leds)),
        matched_at_ms=matched_at,
        exception_id=exception_id,
    )


def strip_detail(r: ExceptionRecord) -> tuple[object, ...]:
    return (
        r.exception_id, r.reference, r.flow, r.kind, r.status, r.currency, r.ledger_currency,
        r.payment_amount_minor, r.ledger_amount_minor, r.payment_event_ids, r.ledger_event_ids,
        r.raised_at_ms, r.resolved_at_ms,
    )  # fmt: skip

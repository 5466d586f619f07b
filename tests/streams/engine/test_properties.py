"""Properties: interleaving independence, redelivery safety, conservation, on every store."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract.model import (
    ExceptionRecord,
    ExceptionStatus,
    Flow,
    Heartbeat,
    InputEvent,
    MatchRecord,
    Side,
)
from streams.engine import EngineOutput, EngineSnapshot, MatchConfig, MatchingEngine
from streams.engine.progress import progress
from streams.state.base import KeyValueStore
from streams.state.memory import MemoryStore
from streams.state.transaction import PartitionTransaction
from tests.streams.engine.testkit import Item, content_hash

LATENESS = 100
WINDOW = 1_000
RETENTION = 4_000
REFS = ("A", "B", "C")
AMOUNTS = (50, 100, 150, 200, 201)


@dataclass(frozen=True)
class Streams:
    payments: tuple[Item, ...]
    ledgers: tuple[Item, ...]
    config: MatchConfig
    duplicates: int
    conflicts: int


@st.composite
def side_stream(
    draw: st.DrawFn, side: Side, disorder: int = LATENESS
) -> tuple[list[Item], int, int]:
    """One side in its fixed order; every item is at most ``disorder`` behind the side's max
    (beyond LATENESS some events arrive late). Duplicates stay within LATENESS."""
    items: list[Item] = []
    base = 0
    seen_max = -(10**9)
    dups = conflicts = 0
    originals: list[InputEvent] = []
    prefix = "p" if side is Side.PAYMENT else "l"
    for _ in range(draw(st.integers(0, 22))):
        base += draw(st.sampled_from((0, 10, 60, 150, 400, 1_200)))
        what = draw(st.sampled_from(("event",) * 6 + ("heartbeat", "dup", "conflict")))
        offset = len(items)
        fresh = [e for e in originals if e.event_time_ms >= seen_max - LATENESS]
        if what == "heartbeat":
            items.append(Heartbeat(side, base, offset))
            seen_max = max(seen_max, base)
            continue
        if what == "dup" and fresh:
            e = draw(st.sampled_from(fresh))
            items.append(
                InputEvent(
                    side,
                    e.event_id,
                    e.reference,
                    e.amount_minor,
                    e.currency,
                    e.event_time_ms,
                    e.flow,
                    e.content_hash,
                    offset,
                )
            )
            dups += 1
            continue
        t = base - draw(st.integers(0, disorder))
        t = max(t, seen_max - disorder)
        if what == "conflict" and fresh:
            e = draw(st.sampled_from(fresh))
            amount = e.amount_minor + 1
            items.append(
                InputEvent(
                    side,
                    e.event_id,
                    e.reference,
                    amount,
                    e.currency,
                    t,
                    e.flow,
                    content_hash("conflict", e.event_id, amount, t),
                    offset,
                )
            )
            conflicts += 1
            seen_max = max(seen_max, t)
            continue
        ref = draw(st.sampled_from(REFS))
        cur = draw(st.sampled_from(("EUR", "EUR", "EUR", "USD")))
        flow = draw(st.sampled_from((Flow.PAYMENT, Flow.PAYMENT, Flow.REFUND)))
        amount = draw(st.sampled_from(AMOUNTS))
        event_id = f"{prefix}{len(originals)}"
        ev = InputEvent(side, event_id, ref, amount, cur, t, flow,
                        content_hash(side, event_id, ref, amount, cur, t, flow), offset)  # fmt: skip
        items.append(ev)
        originals.append(ev)
        seen_max = max(seen_max, t)
    # Heartbeats far ahead flush the buffer and fire every deadline and most purges.
    items.append(Heartbeat(side, base + 3 * WINDOW, len(items)))
    return items, dups, conflicts


@st.composite
def two_streams(draw: st.DrawFn, disorder: int = LATENESS) -> Streams:
    pays, pd, pc = draw(side_stream(Side.PAYMENT, disorder))
    leds, ld, lc = draw(side_stream(Side.LEDGER, disorder))
    config = MatchConfig(
        allowed_lateness_ms=LATENESS,
        match_window_ms=WINDOW,
        retention_ms=RETENTION,
        amount_tolerance_minor=draw(st.sampled_from((0, 0, 1))),
        amount_tolerance_bps=draw(st.sampled_from((0, 0, 100))),
    )
    return Streams(tuple(pays), tuple(leds), config, pd + ld, pc + lc)


@st.composite
def interleaving(draw: st.DrawFn, s: Streams) -> list[Item]:
    """Merge the two sides in any order that keeps each side's own order."""
    picks = draw(st.lists(st.booleans(), min_size=len(s.payments) + len(s.ledgers),
                          max_size=len(s.payments) + len(s.ledgers)))  # fmt: skip
    pays, leds = list(s.payments), list(s.ledgers)
    merged: list[Item] = []
    for take_pay in picks:
        if (take_pay and pays) or not leds:
            merged.append(pays.pop(0))
        else:
            merged.append(leds.pop(0))
    return merged


StoreFactory = Callable[[], "contextmanager[KeyValueStore]"]


@contextmanager
def memory_store() -> Iterator[KeyValueStore]:
    yield MemoryStore()


@contextmanager
def batching_store() -> Iterator[KeyValueStore]:
    yield PartitionTransaction(MemoryStore())


@dataclass
class Result:
    matches: set[MatchRecord]
    exceptions: set[ExceptionRecord]
    snapshot: EngineSnapshot
    out: EngineOutput


def feed(engine: MatchingEngine, store: KeyValueStore, items: Sequence[Item], out: EngineOutput,
         chunk: int = 5, budget: int | None = None) -> None:  # fmt: skip
    """Batch through ``on_batch``; a batching overlay is flushed after each call. With a step
    budget, each batch takes as many calls as its sweeps need, as the worker does."""
    for start in range(0, len(items), chunk):
        batch = list(items[start : start + chunk])
        while True:
            o = engine.on_batch(store, 0, batch, budget)
            out.extend(o)
            if isinstance(store, PartitionTransaction):
                store.flush()
            if budget is not None:
                assert o.released + o.deadlines_fired + o.purged <= budget
            assert o.paused or o.consumed == len(batch)
            assert o.paused == engine.pending(store, 0) or o.consumed < len(batch)
            batch = batch[o.consumed :]
            if not o.paused:
                break


def process(s: Streams, items: Sequence[Item], store: KeyValueStore, chunk: int,
            budget: int | None = None) -> Result:  # fmt: skip
    engine = MatchingEngine(s.config)
    out = EngineOutput()
    feed(engine, store, items, out, chunk, budget)
    snapshot = engine.snapshot(store, 0)
    check_open_groups(store, snapshot)
    return Result(set(out.matches), set(out.exceptions), snapshot, out)


def check_open_groups(store: KeyValueStore, snapshot: EngineSnapshot) -> None:
    """The count the open-groups metric reads equals the groups waiting on a deadline."""
    waiting = sum(1 for g in snapshot.groups if g.deadline_ms is not None)
    state = progress(store)
    assert state is not None or waiting == 0
    if state is not None:
        assert state.open_groups == waiting


def check_conservation(s: Streams, r: Result) -> None:
    events = [i for i in (*s.payments, *s.ledgers) if isinstance(i, InputEvent)]
    assert r.out.duplicates_dropped == s.duplicates
    assert r.out.conflicts == s.conflicts
    unique = {(e.side, e.event_id) for e in events}
    assert len(unique) + s.duplicates + s.conflicts == len(events)
    place: Counter[tuple[Side, str]] = Counter()
    for m in r.matches:
        place.update((Side.PAYMENT, x) for x in m.payment_event_ids)
        place.update((Side.LEDGER, x) for x in m.ledger_event_ids)
    for g in r.snapshot.groups:
        place.update((Side.PAYMENT, m.event_id) for m in g.payment_events)
        place.update((Side.LEDGER, m.event_id) for m in g.ledger_events)
    place.update((b.side, b.event_id) for b in r.snapshot.buffered)
    purged: set[tuple[Side, str]] = set()
    for x in r.exceptions:
        if x.status is ExceptionStatus.OPEN:
            purged.update((Side.PAYMENT, i) for i in x.payment_event_ids)
            purged.update((Side.LEDGER, i) for i in x.ledger_event_ids)
    for key in unique:
        assert place[key] == 1 or (place[key] == 0 and key in purged), key
    assert set(place) <= unique
    # Every match balances and every resolution follows a late match with its id.
    for m in r.matches:
        assert m.difference_minor == m.ledger_amount_minor - m.payment_amount_minor
        assert abs(m.difference_minor) <= s.config.tolerance(m.payment_amount_minor)
    late_ids = {m.exception_id for m in r.matches if m.exception_id}
    resolved = {x.exception_id for x in r.exceptions if x.status is ExceptionStatus.RESOLVED}
    assert resolved == late_ids


def check_all(s: Streams, orders: list[list[Item]], make_store: StoreFactory,
              redeliver: tuple[int, int]) -> None:  # fmt: skip
    results = []
    # One item at a time for the first order, batches of 5 and 17 for the others.
    for items, chunk in zip(orders, (1, 5, 17, 5), strict=False):
        with make_store() as store:
            results.append(process(s, items, store, chunk))
    # Sweeps paused on a step budget of 1 or 2 and resumed by the next calls.
    for budget, chunk in ((1, 7), (2, 3)):
        with make_store() as store:
            results.append(process(s, orders[-1], store, chunk, budget))
    first = results[0]
    check_conservation(s, first)
    for other in results[1:]:
        assert other.matches == first.matches
        assert other.exceptions == first.exceptions
        assert other.snapshot == first.snapshot
    # Redelivery: stop after a prefix, restart from an earlier point with the same offsets.
    items = orders[-1]
    stop = redeliver[0] % (len(items) + 1)
    restart = redeliver[1] % (stop + 1)
    with make_store() as store:
        engine = MatchingEngine(s.config)
        out = EngineOutput()
        feed(engine, store, items[:stop], out)
        feed(engine, store, items[restart:], out, chunk=3)
        assert set(out.matches) == first.matches
        assert set(out.exceptions) == first.exceptions
        assert engine.snapshot(store, 0) == first.snapshot


# ENGINE_PROPERTY_EXAMPLES raises the count for a longer hunt (the default keeps the suite fast).
EXAMPLES = int(os.environ.get("ENGINE_PROPERTY_EXAMPLES", "120"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _orders(data: st.DataObject, s: Streams) -> list[list[Item]]:
    pays_first = [*s.payments, *s.ledgers]
    leds_first = [*s.ledgers, *s.payments]
    return [pays_first, leds_first, data.draw(interleaving(s)), data.draw(interleaving(s))]


_DB_NUMBERS = itertools.count()
REDELIVER = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6))


@SETTINGS
@given(s=two_streams(), data=st.data(), redeliver=REDELIVER)
def test_properties_memory(s: Streams, data: st.DataObject, redeliver: tuple[int, int]) -> None:
    check_all(s, _orders(data, s), memory_store, redeliver)


@SETTINGS
@given(s=two_streams(), data=st.data(), redeliver=REDELIVER)
def test_properties_batching_overlay(
    s: Streams, data: st.DataObject, redeliver: tuple[int, int]
) -> None:
    check_all(s, _orders(data, s), batching_store, redeliver)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(s=two_streams(), data=st.data(), redeliver=REDELIVER)
def test_properties_rocksdict(
    s: Streams, data: st.DataObject, redeliver: tuple[int, int], tmp_path: Path
) -> None:
    from streams.state.rocksdict_store import RocksDictStore

    @contextmanager
    def rocks() -> Iterator[KeyValueStore]:
        # tmp_path is shared by all examples: every store gets a directory of its own.
        n = next(_DB_NUMBERS)
        store = RocksDictStore(tmp_path / f"db{n}")
        try:
            yield PartitionTransaction(store) if n % 2 else store
        finally:
            store.close()

    check_all(s, _orders(data, s)[:3], rocks, redeliver)


@SETTINGS
@given(s=two_streams(disorder=3 * WINDOW), data=st.data(), redeliver=REDELIVER)
def test_late_events_batch_like_single_items(
    s: Streams, data: st.DataObject, redeliver: tuple[int, int]
) -> None:
    """With late events outputs may depend on the interleaving, but for one interleaving,
    batching, the overlay and redelivery still change nothing, and nothing is lost."""
    items = data.draw(interleaving(s))
    single = process(s, items, MemoryStore(), 1)
    check_conservation(s, single)
    for chunk in (4, 50):
        for store in (MemoryStore(), PartitionTransaction(MemoryStore())):
            batched = process(s, items, store, chunk)
            assert batched.matches == single.matches
            assert batched.exceptions == single.exceptions
            assert batched.snapshot == single.snapshot
            assert batched.out.late_events == single.out.late_events
    check_all(s, [items], memory_store, redeliver)

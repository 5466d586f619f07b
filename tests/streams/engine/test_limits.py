"""Bounds: a released backlog goes out in bounded calls, sums stay in the contract's range,
and a group never grows past its limit."""

from __future__ import annotations

from streams.contract.codec import OutputCodec
from streams.contract.model import ExceptionKind, InputEvent, Side
from streams.engine import EngineOutput, MatchConfig
from streams.state.memory import MemoryStore
from streams.state.transaction import PartitionTransaction
from tests.streams.engine.test_rules import exc
from tests.streams.engine.testkit import HOUR, MIN, T0, Feed, match, run, strip_detail

MAX = 2**63 - 1
W = 48 * HOUR


def _backlog(payments: int) -> Feed:
    """Payments on many references with no ledger traffic, then one ledger heartbeat past
    every deadline: one watermark step releases all of them and fires every deadline."""
    f = Feed()
    for i in range(payments):
        f.pay(f"p{i}", 100 + i, T0 + i, ref=f"R{i}")
    f.heartbeat(Side.PAYMENT, T0 + 3 * W)
    f.heartbeat(Side.LEDGER, T0 + 3 * W)
    return f


def _largest_value(store: MemoryStore) -> int:
    return max(len(v) for _, v in store.scan(b"", b"\xff"))


def test_backlog_release_is_split_into_bounded_calls() -> None:
    f = _backlog(3000)
    whole, whole_store, engine = run(f.items)
    assert len(whole.exceptions) == 3000  # one MISSING_LEDGER per payment

    store = MemoryStore()
    out = EngineOutput()
    items = list(f.items)
    calls = 0
    while True:
        overlay = PartitionTransaction(store)
        o = engine.on_batch(overlay, 0, items, budget=250)
        calls += 1
        # A call's state changes and outputs stay bounded by the budget, whatever the backlog.
        assert o.released + o.deadlines_fired + o.purged <= 250
        assert len(o.exceptions) <= 250
        assert overlay.pending <= 4 * 250 + len(items) * 3 + 2
        overlay.flush()
        out.extend(o)
        items = items[o.consumed :]
        if not o.paused:
            break
    # 3000 releases and 3000 deadlines at 250 steps a call.
    assert calls >= 6000 // 250
    assert out.exceptions == whole.exceptions
    assert out.matches == whole.matches
    assert engine.snapshot(store, 0) == engine.snapshot(whole_store, 0)
    assert not engine.pending(store, 0)
    # No state value carries the release (there is no outbox): the largest is a small group.
    assert _largest_value(store) < 1000


def test_paused_sweep_resumes_before_a_late_event() -> None:
    """A late event waits for the paused sweep: it is not consumed until the sweep is done, so
    its outcome is the one of on_item order."""
    f = _backlog(40)
    late = f.led("l-late", 100, T0 + 1, ref="R0")  # behind the watermark: applied at once
    whole, _, engine = run(f.items)
    store = MemoryStore()
    first = engine.on_batch(store, 0, f.items, budget=10)
    assert first.paused
    assert first.consumed == len(f.items) - 1  # the late event waits
    out = EngineOutput()
    out.extend(first)
    rest = f.items[first.consumed :]
    while True:
        o = engine.on_batch(store, 0, rest, budget=10)
        out.extend(o)
        rest = rest[o.consumed :]
        if not o.paused:
            break
    assert out.exceptions == whole.exceptions
    assert out.matches == whole.matches
    # R0's payment had already raised MISSING_LEDGER: the late credit resolves it.
    (late_match,) = out.matches
    assert late_match.ledger_event_ids == (late.event_id,)
    assert late_match.exception_id is not None


def test_two_maximal_payments_overflow_and_the_first_stands() -> None:
    f = Feed()
    p1 = f.pay("p1", MAX, T0)
    p2 = f.pay("p2", MAX, T0 + MIN)
    p3 = f.pay("p3", MAX, T0 + 2 * MIN)
    f.flush(T0 + 3 * W)
    out, _, _ = run(f.items)
    assert sorted(map(strip_detail, out.exceptions), key=repr) == sorted(
        [
            exc(ExceptionKind.AMOUNT_OVERFLOW, pays=(p2,), raised_at=p2.event_time_ms),
            exc(ExceptionKind.AMOUNT_OVERFLOW, pays=(p3,), raised_at=p3.event_time_ms),
            exc(ExceptionKind.MISSING_LEDGER, pays=(p1,), raised_at=T0 + W),
        ],
        key=repr,
    )
    overflow = next(x for x in out.exceptions if x.kind is ExceptionKind.AMOUNT_OVERFLOW)
    assert "beyond 9223372036854775807" in overflow.detail
    assert out.parked == 2
    codec = OutputCodec()
    for x in out.exceptions:  # every amount fits Avro's long
        codec.encode_exception(x)


def test_overflowing_ledger_side_does_not_block_the_match() -> None:
    f = Feed()
    p1 = f.pay("p1", MAX, T0)
    l1 = f.led("l1", MAX - 1, T0 + MIN)
    l2 = f.led("l2", 5, T0 + 2 * MIN)  # MAX - 1 + 5 overflows the ledger side
    l3 = f.led("l3", 1, T0 + 3 * MIN)  # closes the group: MAX - 1 + 1 == MAX
    f.flush(T0 + 3 * W)
    out, _, _ = run(f.items)
    assert out.matches == [
        match(rule="split", pays=[p1], leds=[l1, l3], matched_at=l3.event_time_ms)
    ]
    assert list(map(strip_detail, out.exceptions)) == [
        exc(ExceptionKind.AMOUNT_OVERFLOW, leds=(l2,), raised_at=l2.event_time_ms)
    ]


def test_group_limit_parks_events_beyond_it() -> None:
    f = Feed()
    pays = [f.pay(f"p{i}", 10, T0 + i * MIN) for i in range(5)]
    f.flush(T0 + 3 * W)
    out, _, _ = run(f.items, MatchConfig(max_group_events=3))
    parked = [x for x in out.exceptions if x.kind is ExceptionKind.GROUP_LIMIT]
    assert [strip_detail(x) for x in parked] == [
        exc(ExceptionKind.GROUP_LIMIT, pays=(p,), raised_at=p.event_time_ms) for p in pays[3:]
    ]
    assert "beyond 3 events" in parked[0].detail
    (missing,) = [x for x in out.exceptions if x.kind is ExceptionKind.MISSING_LEDGER]
    assert missing.payment_event_ids == ("p0", "p1", "p2")


def test_parked_id_is_a_duplicate_until_retention() -> None:
    config = MatchConfig(max_group_events=1, retention_ms=10 * W)
    f = Feed()
    f.pay("p0", 10, T0)
    p1 = f.pay("p1", 10, T0 + MIN)
    f.flush(T0 + 2 * W)
    again = f.again(p1)
    out, store, engine = run(f.items, config)
    assert out.parked == 1
    assert out.duplicates_dropped == 1  # the redelivered parked event is not reported again
    # After retention its id is forgotten: the same id is a new event again.
    f.flush(T0 + 20 * W)
    later = Feed(next_offset=dict(f.next_offset))
    later.event(Side.PAYMENT, again.event_id, 10, T0 + 21 * W, ref="R2")
    o = engine.on_batch(store, 0, later.items)
    assert o.duplicates_dropped == 0
    assert o.events == 1


def test_group_limit_is_validated() -> None:
    import pytest

    from streams.engine import EngineConfigError

    for bad in (0, 1001):
        with pytest.raises(EngineConfigError):
            MatchConfig(max_group_events=bad)


def test_legacy_meta_with_outbox_offsets_still_decodes() -> None:
    from streams.engine import codec

    # [partition, ledger_max, payment_max, watermark, ledger_offset, payment_offset, pruned x2]
    meta = codec.decode_meta(b"[2,100,200,50,7,9,3,4]")
    assert (meta.partition, meta.watermark, meta.offsets, meta.swept) == (2, 50, [7, 9], 50)
    assert codec.decode_meta(codec.encode_meta(meta)) == meta


def test_late_event_input_is_unchanged_by_limits() -> None:
    """The default limits leave ordinary traffic alone: nothing parked."""
    f = Feed()
    p = f.pay("p1", 100, T0)
    lg = f.led("l1", 100, T0 + MIN)
    f.flush(T0 + 3 * W)
    out, _, _ = run(f.items)
    assert isinstance(p, InputEvent)
    assert out.parked == 0
    assert out.matches == [match(rule="exact", pays=[p], leds=[lg], matched_at=lg.event_time_ms)]


def test_state_from_before_the_open_group_count_is_counted_on_its_next_batch() -> None:
    import orjson

    from streams.engine import MatchingEngine, codec, keys
    from streams.engine.progress import progress

    store = MemoryStore()
    engine = MatchingEngine(MatchConfig())
    feed = Feed()
    for i, ref in enumerate(("a", "b", "c")):
        feed.pay(f"p{i}", 100, T0 + i, ref=ref)
    feed.flush(T0 + 10 * MIN)  # releases them: three groups wait for their ledger entries
    engine.on_batch(store, 0, feed.items)

    def open_groups() -> int | None:
        state = progress(store)
        assert state is not None
        return state.open_groups

    assert open_groups() == 3
    # Written by a version without the count: the 7-element meta.
    meta = codec.decode_meta(store.get(keys.META) or b"")
    meta.open_groups = None
    store.put(keys.META, codec.encode_meta(meta))
    assert len(orjson.loads(store.get(keys.META) or b"")) == 7
    assert open_groups() is None
    feed.items.clear()
    feed.led("l0", 100, T0 + 10 * MIN, ref="a")
    feed.flush(T0 + 20 * MIN)
    engine.on_batch(store, 0, feed.items)
    assert open_groups() == 2  # counted (3), then one matched

"""At-least-once safety: redelivered offsets re-emit their outputs; misuse fails loudly."""

from __future__ import annotations

import pytest
from _engine_testkit import HOUR, MIN, T0, Feed, run

from streams.contract.model import InputEvent, Side
from streams.engine import (
    EngineConfigError,
    EngineOutput,
    InvalidInputError,
    MatchConfig,
    MatchingEngine,
    PartitionMismatchError,
)
from streams.state.memory import MemoryStore


def _feed() -> Feed:
    f = Feed()
    f.pay("p1", 100, T0)
    f.led("l1", 100, T0 + MIN)
    f.pay("p2", 40, T0 + 2 * MIN)
    f.flush(T0 + 100 * HOUR)  # releases the match and raises MISSING_LEDGER for p2
    return f


def test_redelivered_offsets_reemit_exactly_their_outputs() -> None:
    f = _feed()
    out, store, engine = run(f.items)
    assert len(out.matches) == 1
    assert len(out.exceptions) == 1
    before = engine.snapshot(store, 0)
    again = EngineOutput()
    for item in f.items:
        again.extend(engine.on_item(store, 0, item))
    assert again.replays == len(f.items)
    assert again.matches == out.matches
    assert again.exceptions == out.exceptions
    assert again.duplicates_dropped == 0
    assert engine.snapshot(store, 0) == before
    # Only the heartbeat that released everything produced output: only it re-emits.
    last = f.items[-1]  # the ledger heartbeat: the payment one alone left the ledger side behind
    assert engine.on_item(store, 0, last).matches == out.matches
    assert engine.on_item(store, 0, f.items[0]).matches == []


def test_on_committed_prunes_the_outbox() -> None:
    f = _feed()
    _, store, engine = run(f.items)
    assert engine.on_committed(store, 0, Side.PAYMENT, 10) == 0  # payment side produced nothing
    assert engine.on_committed(store, 0, Side.LEDGER, 1) == 0  # offset 0 (l1): no outputs
    assert engine.on_committed(store, 0, Side.LEDGER, 2) == 1  # the heartbeat at offset 1
    replay = engine.on_batch(store, 0, f.items)
    assert replay.replays == len(f.items)
    assert replay.matches == []
    assert replay.exceptions == []


def test_upstream_redelivery_is_a_dropped_duplicate() -> None:
    f = _feed()
    p1 = f.items[0]
    assert isinstance(p1, InputEvent)
    f.again(p1)
    out, _, _ = run(f.items)
    assert out.duplicates_dropped == 1
    assert out.replays == 0
    assert len(out.matches) == 1


def test_on_batch_equals_on_item_sequence() -> None:
    f = _feed()
    out, store, engine = run(f.items)
    batch_store = MemoryStore()
    batch = engine.on_batch(batch_store, 0, f.items)
    assert batch == out
    assert engine.snapshot(batch_store, 0) == engine.snapshot(store, 0)


def test_store_of_another_partition_is_refused() -> None:
    f = _feed()
    _, store, engine = run(f.items, partition=3)
    with pytest.raises(PartitionMismatchError):
        engine.on_item(store, 4, f.items[0])
    with pytest.raises(PartitionMismatchError):
        engine.snapshot(store, 4)


@pytest.mark.parametrize("amount", [0, -5])
def test_non_positive_amount_is_refused_before_any_write(amount: int) -> None:
    f = Feed()
    f.pay("p1", amount, T0)
    store = MemoryStore()
    with pytest.raises(InvalidInputError):
        MatchingEngine().on_item(store, 0, f.items[0])
    assert len(store) == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"allowed_lateness_ms": -1}, {"match_window_ms": 0}, {"amount_tolerance_bps": 1.5}],
)
def test_invalid_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(EngineConfigError):
        MatchConfig(**kwargs)  # type: ignore[arg-type]


def test_batch_failure_keeps_offsets_of_applied_items() -> None:
    f = Feed()
    f.pay("p1", 100, T0)
    f.pay("bad", 0, T0 + 1)
    store = MemoryStore()
    engine = MatchingEngine()
    with pytest.raises(InvalidInputError):
        engine.on_batch(store, 0, f.items)
    assert engine.snapshot(store, 0).payment_offset == 0
    assert engine.on_item(store, 0, f.items[0]).replays == 1

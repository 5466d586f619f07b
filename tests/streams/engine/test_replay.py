"""At-least-once safety: redelivered offsets are skipped; misuse fails loudly."""

from __future__ import annotations

import pytest

from streams.contract.model import InputEvent
from streams.engine import (
    EngineConfigError,
    EngineOutput,
    InvalidInputError,
    MatchConfig,
    MatchingEngine,
    PartitionMismatchError,
)
from streams.state.memory import MemoryStore
from tests.streams.engine.testkit import HOUR, MIN, T0, Feed, run


def _feed() -> Feed:
    f = Feed()
    f.pay("p1", 100, T0)
    f.led("l1", 100, T0 + MIN)
    f.pay("p2", 40, T0 + 2 * MIN)
    f.flush(T0 + 100 * HOUR)  # releases the match and raises MISSING_LEDGER for p2
    return f


def test_redelivered_offsets_are_skipped() -> None:
    """A Kafka redelivery (an offset at or below the applied one) changes nothing and emits
    nothing: its outputs went out with the state that marks it applied (one transaction)."""
    f = _feed()
    out, store, engine = run(f.items)
    assert len(out.matches) == 1
    assert len(out.exceptions) == 1
    before = engine.snapshot(store, 0)
    again = EngineOutput()
    for item in f.items:
        again.extend(engine.on_item(store, 0, item))
    assert again.replays == len(f.items)
    assert again.matches == []
    assert again.exceptions == []
    assert again.duplicates_dropped == 0
    assert engine.snapshot(store, 0) == before
    batch = engine.on_batch(store, 0, f.items)
    assert (batch.replays, batch.consumed, batch.matches) == (len(f.items), len(f.items), [])


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
    # A float is refused by the check, or by the compiled class itself (streams/native.py).
    with pytest.raises((EngineConfigError, TypeError)):
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

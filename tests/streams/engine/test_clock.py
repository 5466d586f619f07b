"""The watermark clock alone: side maxima, the watermark that follows them, and lateness."""

from __future__ import annotations

import pytest

from streams.contract.model import Side
from streams.engine import keys
from streams.engine.clock import WatermarkClock, load_meta
from streams.engine.codec import Meta, encode_meta
from streams.engine.exceptions import PartitionMismatchError
from streams.state.memory import MemoryStore

PAY = keys.SIDE_CODE[Side.PAYMENT]
LED = keys.SIDE_CODE[Side.LEDGER]


def fresh() -> Meta:
    return load_meta(MemoryStore(), 0)


def test_no_watermark_until_both_sides_are_seen() -> None:
    clock, meta = WatermarkClock(10), fresh()
    clock.observe(meta, PAY, 1_000)
    clock.observe(meta, PAY, 2_000)
    assert meta.max_time[PAY] == 2_000
    assert meta.max_time[LED] is None
    assert meta.watermark is None
    assert not clock.is_late(meta, -(10**12))  # nothing is late before there is a watermark


def test_watermark_is_the_slower_side_minus_the_lateness() -> None:
    clock, meta = WatermarkClock(10), fresh()
    clock.observe(meta, PAY, 2_000)
    clock.observe(meta, LED, 500)
    assert meta.watermark == 490
    clock.observe(meta, LED, 3_000)
    assert meta.watermark == 1_990  # now the payment side is the slower one


def test_watermark_and_side_maxima_never_move_back() -> None:
    clock, meta = WatermarkClock(0), fresh()
    clock.observe(meta, PAY, 1_000)
    clock.observe(meta, LED, 1_000)
    clock.observe(meta, LED, 400)  # an out-of-order input
    assert (meta.max_time[LED], meta.watermark) == (1_000, 1_000)


def test_late_is_strictly_behind_the_watermark() -> None:
    clock, meta = WatermarkClock(100), fresh()
    clock.observe(meta, PAY, 1_000)
    clock.observe(meta, LED, 1_000)
    assert meta.watermark == 900
    assert clock.is_late(meta, 899)
    assert not clock.is_late(meta, 900)


def test_meta_of_another_partition_is_refused() -> None:
    store = MemoryStore()
    store.put(keys.META, encode_meta(Meta(3, [None, None], None, [-1, -1], None, 0)))
    assert load_meta(store, 3).partition == 3
    with pytest.raises(PartitionMismatchError):
        load_meta(store, 4)

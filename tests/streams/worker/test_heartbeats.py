"""IdleTracker decisions by a monotonic clock (seconds), timeout in milliseconds."""

from __future__ import annotations

import orjson
import pytest

from streams.contract.decode import decode_input
from streams.contract.model import Heartbeat, Side
from streams.worker.heartbeats import IdleTracker, heartbeat_value

TIMEOUT_MS = 10_000  # 10 s


def test_side_silent_longer_than_timeout_while_other_is_active_is_reported() -> None:
    idle = IdleTracker(TIMEOUT_MS)
    idle.seen(0, Side.PAYMENT, 100.0)
    idle.seen(0, Side.LEDGER, 100.0)
    idle.seen(0, Side.PAYMENT, 108.0)

    # Ledger silent 11 s (> 10 s), payment 3 s.
    assert list(idle.idle([0], 111.0)) == [(0, Side.LEDGER)]


def test_not_reported_before_or_at_the_timeout() -> None:
    idle = IdleTracker(TIMEOUT_MS)
    idle.seen(0, Side.PAYMENT, 100.0)
    idle.seen(0, Side.LEDGER, 100.0)
    idle.seen(0, Side.PAYMENT, 108.0)

    assert list(idle.idle([0], 100.0)) == []
    assert list(idle.idle([0], 109.5)) == []  # silent 9.5 s
    assert list(idle.idle([0], 110.0)) == []  # silent exactly the timeout: not longer


def test_partition_where_both_sides_are_silent_is_not_reported() -> None:
    idle = IdleTracker(TIMEOUT_MS)
    idle.seen(0, Side.PAYMENT, 100.0)
    idle.seen(0, Side.LEDGER, 101.0)

    assert list(idle.idle([0], 120.0)) == []  # both silent for more than 10 s


def test_silence_of_the_other_side_counts_from_first_activity() -> None:
    idle = IdleTracker(TIMEOUT_MS)
    idle.seen(1, Side.PAYMENT, 100.0)  # the ledger of partition 1 has never been seen
    idle.seen(1, Side.PAYMENT, 109.0)

    assert list(idle.idle([1], 109.0)) == []
    assert list(idle.idle([1], 110.5)) == [(1, Side.LEDGER)]


def test_only_the_asked_partitions_in_order_and_unknown_ones_are_skipped() -> None:
    idle = IdleTracker(TIMEOUT_MS)
    for partition, quiet in ((2, Side.PAYMENT), (0, Side.LEDGER), (1, Side.LEDGER)):
        idle.seen(partition, quiet, 100.0)
        idle.seen(partition, Side.LEDGER if quiet is Side.PAYMENT else Side.PAYMENT, 115.0)

    assert list(idle.idle([2, 0, 5, 2], 116.0)) == [(0, Side.LEDGER), (2, Side.PAYMENT)]
    assert list(idle.idle([], 116.0)) == []


def test_reported_side_stops_being_idle_once_seen() -> None:
    idle = IdleTracker(TIMEOUT_MS)
    idle.seen(0, Side.PAYMENT, 100.0)
    idle.seen(0, Side.LEDGER, 100.0)
    idle.seen(0, Side.PAYMENT, 112.0)
    assert list(idle.idle([0], 112.0)) == [(0, Side.LEDGER)]

    idle.seen(0, Side.LEDGER, 112.0)  # what the worker does after writing a heartbeat
    assert list(idle.idle([0], 112.0)) == []


@pytest.mark.parametrize("side", [Side.PAYMENT, Side.LEDGER])
@pytest.mark.parametrize("event_time", [0, 1_767_225_600_000, 253_402_300_799_999])
def test_heartbeat_value_decodes_to_a_heartbeat(side: Side, event_time: int) -> None:
    value = heartbeat_value(event_time)

    assert orjson.loads(value) == {"event_time": event_time}
    assert decode_input(side, None, value, 42) == Heartbeat(side, event_time, 42)

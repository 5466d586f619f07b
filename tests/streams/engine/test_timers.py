"""The timer indexes alone: which deadline or purge is due first, and the per-call bounds
that let a check cost nothing while none is."""

from __future__ import annotations

from streams.contract.model import Flow
from streams.engine import keys
from streams.engine.timers import Timers
from streams.state.memory import MemoryStore

GID_A = keys.group_id("A", Flow.PAYMENT, "EUR")
GID_B = keys.group_id("B", Flow.PAYMENT, "EUR")


def test_due_timers_come_in_time_order_a_deadline_first_on_a_tie() -> None:
    store = MemoryStore()
    timers = Timers(store, None)
    timers.move_deadline(GID_A, None, 300)
    timers.put_retention(300, keys.PURGE_EXCEPTION, b"x1")
    timers.put_retention(100, keys.PURGE_EXCEPTION, b"x0")
    timers.sweep_bound = 1_000
    fired: list[bytes] = []
    while (due := timers.next_due(1_000)) is not None:
        key, _ = due
        fired.append(key)
        store.delete(key)  # what the caller does on firing
    assert fired == [
        keys.retention_key(100, keys.PURGE_EXCEPTION, b"x0"),
        keys.deadline_key(300, GID_A),
        keys.retention_key(300, keys.PURGE_EXCEPTION, b"x1"),
    ]


def test_nothing_at_or_after_before_is_due_and_the_bounds_are_then_known() -> None:
    store = MemoryStore()
    timers = Timers(store, None)
    timers.move_deadline(GID_A, None, 500)
    timers.sweep_bound = 1_000
    assert not timers.none_due(200)  # nothing read yet
    assert timers.next_due(200) is None
    assert (timers.next_deadline, timers.next_retention) == (500, 1_000)
    assert timers.none_due(500)
    assert not timers.none_due(501)


def test_a_timer_scheduled_below_a_known_bound_lowers_it() -> None:
    store = MemoryStore()
    timers = Timers(store, None)
    timers.sweep_bound = 1_000
    assert timers.next_due(1_000) is None
    assert timers.none_due(1_000)
    timers.move_deadline(GID_A, None, 700)
    timers.put_retention(600, keys.PURGE_MATCH, b"m", b"[]")
    assert (timers.next_deadline, timers.next_retention) == (700, 600)
    due = timers.next_due(1_000)
    assert due == (keys.retention_key(600, keys.PURGE_MATCH, b"m"), b"[]")


def test_reads_start_at_the_floor() -> None:
    """Entries below the floor (nothing due is left there) are not read again."""
    store = MemoryStore()
    store.insert(keys.deadline_key(50, GID_B), b"")  # below the floor: already fired
    timers = Timers(store, 100)
    timers.move_deadline(GID_A, None, 150)
    timers.sweep_bound = 1_000
    assert timers.next_due(1_000) == (keys.deadline_key(150, GID_A), b"")


def test_moving_a_deadline_reindexes_it_and_counts_open_groups() -> None:
    store = MemoryStore()
    timers = Timers(store, None)
    timers.move_deadline(GID_A, None, 300)
    timers.move_deadline(GID_B, None, 400)
    timers.move_deadline(GID_A, 300, 350)
    timers.move_deadline(GID_B, 400, None)
    assert [k for k, _ in store.scan(keys.DEADLINE, b"E")] == [keys.deadline_key(350, GID_A)]
    assert timers.open_delta == 1


def test_a_cancelled_purge_is_gone() -> None:
    store = MemoryStore()
    timers = Timers(store, None)
    timers.put_retention(100, keys.PURGE_EXCEPTION, b"x")
    timers.cancel_retention(100, keys.PURGE_EXCEPTION, b"x")
    timers.sweep_bound = 1_000
    assert timers.next_due(1_000) is None

"""The group table alone: one decode per call, and the deadline index kept in step."""

from __future__ import annotations

from streams.contract.model import Flow
from streams.engine import keys
from streams.engine.codec import Group, encode_group
from streams.engine.config import MatchConfig
from streams.engine.groups import Groups
from streams.engine.timers import Timers
from streams.state.memory import MemoryStore

WINDOW = 1_000
GID = keys.group_id("R1", Flow.PAYMENT, "EUR")


def table(store: MemoryStore) -> tuple[Groups, Timers]:
    timers = Timers(store, None)
    return Groups(store, MatchConfig(match_window_ms=WINDOW), timers), timers


def deadlines(store: MemoryStore) -> list[bytes]:
    return [k for k, _ in store.scan(keys.DEADLINE, b"E")]


def test_an_open_group_waits_a_window_from_its_earliest_member() -> None:
    store = MemoryStore()
    groups, timers = table(store)
    g = Group(GID, None, None, [("p1", 100, 500)], [("l1", 40, 200)])
    groups.save(g)
    assert g.deadline == 200 + WINDOW
    assert deadlines(store) == [keys.deadline_key(1_200, GID)]
    assert timers.open_delta == 1
    del g.ledgers[:]
    groups.save(g)  # the earliest member left: the deadline moves
    assert deadlines(store) == [keys.deadline_key(1_500, GID)]
    assert timers.open_delta == 1


def test_a_raised_group_has_no_deadline_and_an_empty_one_is_deleted() -> None:
    store = MemoryStore()
    groups, timers = table(store)
    g = Group(GID, None, None, [("p1", 100, 500)], [])
    groups.save(g)
    g.exception_id = "x"
    groups.save(g)
    assert (g.deadline, deadlines(store), timers.open_delta) == (None, [], 0)
    assert store.get(keys.group_key(GID)) is not None
    g.payments.clear()
    groups.save(g)
    assert store.get(keys.group_key(GID)) is None
    assert groups.load(GID) is None


def test_a_group_is_decoded_once_per_call() -> None:
    store = MemoryStore()
    store.put(keys.group_key(GID), encode_group(Group(GID, None, None, [("p1", 1, 2)], [])))
    groups, _ = table(store)
    first = groups.load(GID)
    assert first is not None
    assert groups.load(GID) is first
    assert table(store)[0].load(GID) is not first  # a new call decodes again


def test_the_currency_partner_is_the_other_side_in_another_currency() -> None:
    store = MemoryStore()
    groups, _ = table(store)
    pay_eur = Group(GID, None, None, [("p1", 100, 0)], [])
    led_usd = Group(keys.group_id("R1", Flow.PAYMENT, "USD"), None, None, [], [("l1", 90, 0)])
    other_ref = Group(keys.group_id("R2", Flow.PAYMENT, "GBP"), None, None, [], [("l2", 9, 0)])
    refund = Group(keys.group_id("R1", Flow.REFUND, "CHF"), None, None, [], [("l3", 9, 0)])
    for g in (pay_eur, led_usd, other_ref, refund):
        groups.save(g)
    partner = groups.currency_partner(pay_eur, "R1")
    assert partner is not None
    assert partner.gid == led_usd.gid
    assert groups.currency_partner(other_ref, "R2") is None

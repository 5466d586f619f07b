"""simulate(): seeded, every scenario present, each input out of order by less than the
allowed lateness."""

from __future__ import annotations

from collections import Counter

import pytest

from streams.contract.model import ExceptionKind, Flow, Rule, Side
from streams.engine.config import HOUR_MS, MINUTE_MS, MatchConfig
from streams.simulate.scenarios import DEFAULT_MIX, START_MS, SimRecord, simulate
from streams.simulate.truth import truth_of

TOLERANT = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10, match_window_ms=HOUR_MS)


def test_same_seed_same_records_and_truth() -> None:
    a, b = simulate(300, seed=17), simulate(300, seed=17)

    assert a.records == b.records
    assert truth_of(a) == truth_of(b)
    assert truth_of(a).to_json() == truth_of(b).to_json()


def test_different_seed_different_records_and_truth() -> None:
    a, b = simulate(300, seed=17), simulate(300, seed=18)

    assert a.records != b.records
    assert truth_of(a).matches != truth_of(b).matches


def test_at_least_count_records() -> None:
    assert len(simulate(500, seed=1).records) >= 500


def test_smallest_simulation_plays_every_scenario_once() -> None:
    sim = simulate(1, seed=3)

    assert sim.scenarios == Counter(dict.fromkeys(DEFAULT_MIX, 1))


def test_every_scenario_of_the_default_mix_occurs_with_its_outcome() -> None:
    sim = simulate(400, seed=9, config=TOLERANT)
    truth = truth_of(sim)

    assert set(sim.scenarios) == set(DEFAULT_MIX)
    assert all(sim.scenarios[name] >= 1 for name in DEFAULT_MIX)
    assert sum(sim.scenarios.values()) > len(DEFAULT_MIX)  # then a seeded mix

    rules = {m["rule"] for m in truth.matches.values()}
    assert rules == {Rule.EXACT, Rule.SPLIT, Rule.TOLERANCE, Rule.LATE}
    assert {m["flow"] for m in truth.matches.values()} == {Flow.PAYMENT, Flow.REFUND}
    kinds = {(e["kind"], e["status"]) for e in truth.exceptions.values()}
    assert kinds == {
        (ExceptionKind.AMOUNT_MISMATCH, "open"),
        (ExceptionKind.CURRENCY_MISMATCH, "open"),
        (ExceptionKind.MISSING_LEDGER, "open"),
        (ExceptionKind.MISSING_LEDGER, "resolved"),  # the late scenario
        (ExceptionKind.MISSING_PAYMENT, "open"),
        (ExceptionKind.DUPLICATE_CONFLICT, "open"),
    }
    assert sum(truth.dead_letters.values()) == sim.scenarios["invalid"]
    assert truth.duplicates_dropped == sim.scenarios["redelivery"]
    # One exact match per redelivery and conflict scenario, and one per exact/refund.
    exact = sum(sim.scenarios[n] for n in ("exact", "refund", "redelivery", "conflict"))
    assert sum(m["rule"] == Rule.EXACT for m in truth.matches.values()) == exact


def test_records_are_in_arrival_order_and_times_start_at_start() -> None:
    sim = simulate(300, seed=4)

    arrivals = [(r.arrival_ms, r.seq) for r in sim.records]
    assert arrivals == sorted(arrivals)
    times = [_event_time(r) for r in sim.records if isinstance(r.value, dict)]
    assert min(times) == START_MS
    assert sim.flush_time_ms == sim.max_event_time_ms + 48 * HOUR_MS + 5 * MINUTE_MS + 60_000


def _event_time(record: SimRecord) -> int:
    assert isinstance(record.value, dict)
    value = record.value["event_time"]
    assert type(value) is int
    return value


@pytest.mark.parametrize(
    ("seed", "config"),
    [
        (1, MatchConfig()),
        (2, TOLERANT),
        (3, MatchConfig(allowed_lateness_ms=20_000)),
        (4, MatchConfig(allowed_lateness_ms=30 * MINUTE_MS)),
    ],
)
def test_each_side_is_out_of_order_by_less_than_the_allowed_lateness(
    seed: int, config: MatchConfig
) -> None:
    sim = simulate(600, seed=seed, config=config)

    worst = 0
    for side in (Side.PAYMENT, Side.LEDGER):
        latest: int | None = None
        for record in sim.records:
            if record.side is not side or not isinstance(record.value, dict):
                continue
            t = _event_time(record)
            if latest is not None:
                behind = latest - t
                assert behind < config.allowed_lateness_ms, (side, record)
                worst = max(worst, behind)
            latest = t if latest is None else max(latest, t)
    assert worst > 0  # the check is not vacuous: the inputs really are out of order

"""truth_of() against an in-process run (run_local), and check() catching wrong outputs."""

from __future__ import annotations

import dataclasses

import pytest

from streams.contract.model import Rule
from streams.engine.config import MatchConfig
from streams.settings import TopicNames
from streams.simulate.encoding import Format
from streams.simulate.local import LocalRun, kafka_records, run_local
from streams.simulate.scenarios import Simulation, simulate
from streams.simulate.truth import Truth, check, truth_of

TOLERANT = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10, match_window_ms=3_600_000)


@pytest.mark.parametrize("fmt", ["json", "avro"])
@pytest.mark.parametrize(
    ("config", "seed"), [(MatchConfig(), 21), (TOLERANT, 22)], ids=["default", "tolerant"]
)
def test_local_run_matches_the_truth(fmt: Format, config: MatchConfig, seed: int) -> None:
    sim = simulate(400, seed=seed, config=config)
    truth = truth_of(sim)

    run = run_local(sim, config, fmt=fmt, batch=97)
    verdict = check(truth, run.matches, run.exceptions, run.dead_letters)

    assert verdict.ok, verdict.problems
    assert verdict.duplicate_records == 0
    assert verdict.matches == len(truth.matches)
    assert verdict.exceptions == len(truth.exceptions)
    assert verdict.dead_letters == sum(truth.dead_letters.values())
    assert run.counters["duplicates_dropped"] == truth.duplicates_dropped


def test_avro_format_really_sends_avro() -> None:
    sim = simulate(50, seed=2)
    avro = [r.value or b"" for r in kafka_records(sim, 3, "avro", TopicNames())]
    json = [r.value or b"" for r in kafka_records(sim, 3, "json", TopicNames())]

    assert any(v.startswith(b"\xc3\x01") for v in avro)
    assert not any(v.startswith(b"\xc3\x01") for v in json)


@pytest.fixture(scope="module")
def good_run() -> tuple[Simulation, Truth, LocalRun]:
    sim = simulate(300, seed=31, config=TOLERANT)
    run = run_local(sim, TOLERANT)
    assert check(truth_of(sim), run.matches, run.exceptions, run.dead_letters).ok
    return sim, truth_of(sim), run


def test_check_detects_a_missing_match(good_run: tuple[Simulation, Truth, LocalRun]) -> None:
    _, truth, run = good_run
    dropped = run.matches[3]

    verdict = check(truth, run.matches[:3] + run.matches[4:], run.exceptions, run.dead_letters)

    assert not verdict.ok
    assert any(p.startswith(f"missing match {dropped.match_id}") for p in verdict.problems)
    assert verdict.matches == len(truth.matches) - 1


def test_check_detects_a_wrong_rule(good_run: tuple[Simulation, Truth, LocalRun]) -> None:
    _, truth, run = good_run
    i = next(i for i, m in enumerate(run.matches) if m.rule is Rule.EXACT)
    wrong = dataclasses.replace(run.matches[i], rule=Rule.TOLERANCE)
    matches = [*run.matches[:i], wrong, *run.matches[i + 1 :]]

    verdict = check(truth, matches, run.exceptions, run.dead_letters)

    assert not verdict.ok
    assert len(verdict.problems) == 1
    assert verdict.problems[0].startswith(f"wrong match {wrong.match_id}")
    assert "'rule': 'tolerance'" in verdict.problems[0]


def test_check_detects_a_wrong_dead_letter_count(
    good_run: tuple[Simulation, Truth, LocalRun],
) -> None:
    _, truth, run = good_run
    assert run.dead_letters

    fewer = check(truth, run.matches, run.exceptions, run.dead_letters[1:])
    moved = dataclasses.replace(run.dead_letters[0], offset=10_000_000)
    more = check(truth, run.matches, run.exceptions, [*run.dead_letters, moved])

    for verdict in (fewer, more):
        assert not verdict.ok
        assert len(verdict.problems) == 1
        assert verdict.problems[0].startswith("dead letters by reason")


def test_check_counts_but_tolerates_re_emitted_records(
    good_run: tuple[Simulation, Truth, LocalRun],
) -> None:
    _, truth, run = good_run

    verdict = check(
        truth,
        run.matches + run.matches[:2],
        run.exceptions + run.exceptions[:1],
        run.dead_letters + run.dead_letters[:1],  # same source position: one dead letter
    )

    assert verdict.ok, verdict.problems
    assert verdict.duplicate_records == 3


def test_check_detects_a_missing_and_an_unexpected_exception(
    good_run: tuple[Simulation, Truth, LocalRun],
) -> None:
    _, truth, run = good_run
    first = run.exceptions[0]
    renamed = dataclasses.replace(first, exception_id="0" * 32)
    rest = [e for e in run.exceptions if e.exception_id != first.exception_id]

    verdict = check(truth, run.matches, [*rest, renamed], run.dead_letters)

    assert not verdict.ok
    assert any(p.startswith(f"missing exception {first.exception_id}") for p in verdict.problems)
    assert any(p.startswith(f"unexpected exception {'0' * 32}") for p in verdict.problems)

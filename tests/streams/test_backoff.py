"""The one backoff helper every retry loop uses."""

from __future__ import annotations

import pytest

from streams.backoff import backoff_s


def test_the_wait_doubles_from_the_first_and_stops_at_the_cap() -> None:
    waits = [backoff_s(n, 200, 10_000, jitter=False) for n in range(1, 10)]
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]
    assert backoff_s(10_000, 200, 10_000, jitter=False) == 10.0  # no overflow far out


def test_jitter_draws_between_half_and_all_of_the_wait() -> None:
    seen: list[tuple[float, float]] = []

    def draw(low: float, high: float) -> float:
        seen.append((low, high))
        return high

    assert backoff_s(3, 200, 10_000, draw=draw) == 0.8
    assert seen == [(400.0, 800.0)]
    for attempt in range(1, 30):
        cap_s = min(10_000, 100 * 2 ** (attempt - 1)) / 1000
        assert cap_s / 2 <= backoff_s(attempt, 100, 10_000) <= cap_s


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        backoff_s(0, 200, 10_000)

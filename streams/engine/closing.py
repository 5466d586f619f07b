"""The closing rule: the balanced pair of prefixes with the smallest i + j, then smallest i."""

from __future__ import annotations

from itertools import accumulate

from streams.engine.config import MatchConfig


def _balanced(config: MatchConfig, pay_sum: int, led_sum: int) -> bool:
    return abs(led_sum - pay_sum) <= config.tolerance(pay_sum)


def find_pair(
    config: MatchConfig, payments: list[int], ledgers: list[int]
) -> tuple[int, int] | None:
    """Search every prefix pair (i payment-side, j ledger-side amounts), in (i + j, i) order."""
    n, m = len(payments), len(ledgers)
    if not n or not m:
        return None
    pay = [0, *accumulate(payments)]
    led = [0, *accumulate(ledgers)]
    for total in range(2, n + m + 1):
        for i in range(max(1, total - m), min(n, total - 1) + 1):
            if _balanced(config, pay[i], led[total - i]):
                return i, total - i
    return None


def find_pair_with_last(
    config: MatchConfig, payments: list[int], ledgers: list[int], last_is_payment: bool
) -> tuple[int, int] | None:
    """Like :func:`find_pair` when only the just-appended event can complete a pair.

    That holds after every engine step (a group never rests with a balanced pair), so every
    balanced pair uses the new last event and the best one has the smallest other index.
    """
    n, m = len(payments), len(ledgers)
    if not n or not m:
        return None
    if last_is_payment:
        pay_sum = sum(payments)
        tol = config.tolerance(pay_sum)
        led_sum = 0
        for j, amount in enumerate(ledgers, 1):
            led_sum += amount
            if abs(led_sum - pay_sum) <= tol:
                return n, j
            if led_sum - pay_sum > tol:
                return None  # prefix sums only grow
        return None
    led_sum = sum(ledgers)
    pay_sum = 0
    for i, amount in enumerate(payments, 1):
        pay_sum += amount
        if _balanced(config, pay_sum, led_sum):
            return i, m
    return None

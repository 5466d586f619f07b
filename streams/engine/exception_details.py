"""The ``detail`` sentences of exception records: what happened, with the numbers to act on."""

from __future__ import annotations

from functools import lru_cache

from streams.contract.model import ExceptionKind, Flow, Side
from streams.engine.config import DAY_MS, HOUR_MS, MINUTE_MS


@lru_cache(maxsize=64)  # a handful of windows, one call per exception raised
def duration(ms: int) -> str:
    # Days only from a week up: "48 h" reads better than "2 d" for a match window.
    for unit, name in ((DAY_MS, "d"), (HOUR_MS, "h"), (MINUTE_MS, "min"), (1000, "s")):
        if ms >= max(unit, 7 * DAY_MS if unit == DAY_MS else 0) and ms % unit == 0:
            return f"{ms // unit} {name}"
    return f"{ms} ms"


def _ledger_kind(flow: Flow) -> str:
    return "credit" if flow is Flow.PAYMENT else "debit"


def _payment_kind(flow: Flow) -> str:
    return "payment" if flow is Flow.PAYMENT else "refund"


def timeout_detail(
    *,
    kind: ExceptionKind,
    reference: str,
    flow: Flow,
    currency: str,
    ledger_currency: str | None,
    payment_sum: int,
    payment_count: int,
    ledger_sum: int,
    ledger_count: int,
    window_ms: int,
    tolerance: int,
) -> str:
    window = duration(window_ms)
    pk, lk = _payment_kind(flow), _ledger_kind(flow)
    if kind is ExceptionKind.MISSING_LEDGER:
        return (
            f"No ledger {lk} for reference {reference!r}: {payment_count} {pk} event(s) "
            f"totalling {payment_sum} {currency} (minor units) stayed unmatched for the {window} "
            f"match window; check whether the bank booked it under another reference or amount."
        )
    if kind is ExceptionKind.MISSING_PAYMENT:
        return (
            f"No {pk} for reference {reference!r}: {ledger_count} ledger {lk}(s) totalling "
            f"{ledger_sum} {currency} (minor units) stayed unmatched for the {window} match "
            f"window; check the PSP feed for a missing or mis-referenced {pk}."
        )
    if kind is ExceptionKind.CURRENCY_MISMATCH:
        return (
            f"Currency mismatch for reference {reference!r}: {payment_count} {pk} event(s) "
            f"totalling {payment_sum} {currency} and {ledger_count} ledger {lk}(s) totalling "
            f"{ledger_sum} {ledger_currency} (minor units) found no match in the same currency "
            f"within the {window} match window; check the booked currency or FX conversion."
        )
    return (
        f"Amount mismatch for reference {reference!r} in {currency}: {payment_count} {pk} "
        f"event(s) total {payment_sum} and {ledger_count} ledger {lk}(s) total {ledger_sum} "
        f"(minor units, difference {ledger_sum - payment_sum}, tolerance {tolerance}); no "
        f"prefix of them balanced within the {window} match window; look for fees, partial "
        f"bookings or a wrong amount."
    )


def conflict_detail(
    *, side: Side, event_id: str, reference: str, amount: int, currency: str, old: bytes, new: bytes
) -> str:
    return (
        f"The {side.value} event {event_id!r} (reference {reference!r}, {amount} {currency} "
        f"minor units) was received again with different content (hash {old.hex()[:16]} then "
        f"{new.hex()[:16]}); the second copy was not applied, the first stands; fix the producer "
        f"or the event id."
    )


def resolved_detail(original: str, match_id: str, resolved_at_ms: int) -> str:
    return (
        f"Resolved at event time {resolved_at_ms} by late match {match_id}. Originally: {original}"
    )


def parked_detail(
    *, kind: ExceptionKind, side: Side, event_id: str, reference: str, amount: int,
    currency: str, group_events: int, group_sum: int, limit: int,
) -> str:  # fmt: skip
    if kind is ExceptionKind.AMOUNT_OVERFLOW:
        why = (
            f"would take the {side.value} sum of its group ({group_sum} over {group_events} "
            f"event(s)) beyond {limit}, the largest amount the contract can carry"
        )
    else:
        why = f"would take its group beyond {limit} events (it holds {group_events})"
    return (
        f"The {side.value} event {event_id!r} (reference {reference!r}, {amount} {currency} "
        f"minor units) {why}; it was not applied and is reported alone. Reconcile this "
        f"reference by hand, or resend the events under distinct references."
    )

"""Exact 1:1 pairing by reference, shared by the quix-streams peer and its driver.

Plain Python with no third-party imports, so both virtualenvs can import it: the peer runs it
over quix-streams state, the driver replays it over the simulation for the expected count.
"""

from __future__ import annotations

from typing import Any

PAYMENT = "payment"
LEDGER = "ledger"


def is_event(value: Any) -> bool:
    """What the peer can pair: an object with a reference, an event id and an amount.

    Heartbeats (only ``event_time``) fail this. The peer does no further validation: the
    simulation's invalid records have references of their own and simply never pair.
    """
    return (
        type(value) is dict
        and type(value.get("reference")) is str
        and "event_id" in value
        and "amount_minor" in value
    )


def match_record(payment: dict[str, Any], ledger: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference": payment["reference"],
        "payment_event_id": payment["event_id"],
        "ledger_event_id": ledger["event_id"],
        "payment_amount_minor": payment["amount_minor"],
        "ledger_amount_minor": ledger["amount_minor"],
        "currency": payment.get("currency"),
    }


def pair(
    pending: list[Any] | None, side: str, event: dict[str, Any]
) -> tuple[list[Any] | None, dict[str, Any] | None]:
    """One step for one reference: (pending after it, match or None).

    ``pending`` is ``[side, event]`` of the unmatched side. A second event of the pending side
    (a redelivery, one part of a split) is dropped: the peer pairs 1:1 and keeps the first.
    """
    if pending is None:
        return [side, event], None
    if pending[0] == side:
        return pending, None
    payment, ledger = (event, pending[1]) if side == PAYMENT else (pending[1], event)
    return None, match_record(payment, ledger)

"""Ids derived from the inputs only (never random, never the wall clock).

An id is the hex of a 16-byte BLAKE2b digest of the canonical encoding of a list: compact JSON
as orjson writes it (UTF-8, no spaces, strings escaped per RFC 8259). Member ids are sorted so
the id does not depend on the order events were applied in.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import orjson

from streams.contract.model import ExceptionKind, Flow, Side


def _digest(parts: list[object]) -> str:
    return blake2b(orjson.dumps(parts), digest_size=16).hexdigest()


def match_id(
    reference: str,
    flow: Flow,
    currency: str,
    payment_ids: Iterable[str],
    ledger_ids: Iterable[str],
) -> str:
    return _digest(
        ["match", reference, flow.value, currency, sorted(payment_ids), sorted(ledger_ids)]
    )


def exception_id(
    *,
    kind: ExceptionKind,
    reference: str,
    flow: Flow,
    currency: str,
    ledger_currency: str | None,
    payment_ids: Iterable[str],
    ledger_ids: Iterable[str],
) -> str:
    """``ledger_currency`` is set for CURRENCY_MISMATCH only (``null`` in the encoding)."""
    return _digest(
        [
            "exception",
            kind.value,
            reference,
            flow.value,
            currency,
            ledger_currency,
            sorted(payment_ids),
            sorted(ledger_ids),
        ]
    )


def conflict_id(side: Side, event_id: str, original_hash: bytes, new_hash: bytes) -> str:
    return _digest(
        [
            "exception",
            ExceptionKind.DUPLICATE_CONFLICT.value,
            side.value,
            event_id,
            original_hash.hex(),
            new_hash.hex(),
        ]
    )

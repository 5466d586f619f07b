"""Typed records exchanged between the contract layer, the engine and the adapters.

These are plain frozen dataclasses: no Kafka, no Faust. Money is integer minor units and
time is integer epoch milliseconds (event time), never floats and never the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Side(StrEnum):
    """Which input stream an event came from."""

    PAYMENT = "payment"
    LEDGER = "ledger"


class Flow(StrEnum):
    """A payment reconciles with ledger credits, a refund with ledger debits."""

    PAYMENT = "payment"
    REFUND = "refund"


class Rule(StrEnum):
    EXACT = "exact"
    SPLIT = "split"
    TOLERANCE = "tolerance"
    LATE = "late"


class ExceptionKind(StrEnum):
    MISSING_LEDGER = "MISSING_LEDGER"
    MISSING_PAYMENT = "MISSING_PAYMENT"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    DUPLICATE_CONFLICT = "DUPLICATE_CONFLICT"
    AMOUNT_OVERFLOW = "AMOUNT_OVERFLOW"
    GROUP_LIMIT = "GROUP_LIMIT"


class ExceptionStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class InputEvent:
    """A validated payment or ledger event, reduced to what matching needs.

    ``content_hash`` is a digest of the event's canonical content (all contract fields,
    metadata included), so a redelivery can be told apart from a conflicting duplicate
    without keeping the payload. ``offset`` is the source offset in its topic partition:
    the last tie-break of the event-time order and the key of at-least-once re-emission.
    """

    side: Side
    event_id: str
    reference: str
    amount_minor: int
    currency: str
    event_time_ms: int
    flow: Flow
    content_hash: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A record with only an event time: advances one input's watermark, matches nothing."""

    side: Side
    event_time_ms: int
    offset: int


@dataclass(frozen=True, slots=True)
class Consumed:
    """An input record that reached no engine rule (it was dead-lettered): only its offset
    counts, so the engine's applied offset covers every record read, and a skipped one shows."""

    side: Side
    offset: int


@dataclass(frozen=True, slots=True)
class MatchRecord:
    match_id: str
    reference: str
    flow: Flow
    rule: Rule
    currency: str
    payment_amount_minor: int
    ledger_amount_minor: int
    difference_minor: int
    payment_event_ids: tuple[str, ...]
    ledger_event_ids: tuple[str, ...]
    first_event_time_ms: int
    matched_at_ms: int
    exception_id: str | None


@dataclass(frozen=True, slots=True)
class ExceptionRecord:
    exception_id: str
    reference: str
    flow: Flow
    kind: ExceptionKind
    status: ExceptionStatus
    currency: str
    # Set only for CURRENCY_MISMATCH: the ledger side's currency (``currency`` is the payment's).
    ledger_currency: str | None
    payment_amount_minor: int
    ledger_amount_minor: int
    payment_event_ids: tuple[str, ...]
    ledger_event_ids: tuple[str, ...]
    raised_at_ms: int
    resolved_at_ms: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record. Build one with :func:`streams.contract.dead_letters.bounded_dead_letter`:
    ``key`` and ``value`` are then bounded prefixes of the raw bytes, and the ``*_size`` and
    ``*_sha256`` fields describe the full key and value (None when the key or value is None, and
    in dead letters written before DeadLetter v2)."""

    source_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    key_size: int | None = None
    value_size: int | None = None
    key_sha256: str | None = None  # hex
    value_sha256: str | None = None  # hex

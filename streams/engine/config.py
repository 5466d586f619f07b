"""The engine's settings: integers only (milliseconds of event time, minor units, basis points)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from streams.engine.exceptions import EngineConfigError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# The contract's range of an amount, and of every sum the engine forms (Avro ``long``).
MAX_SUM = 2**63 - 1
# With event ids of at most 128 characters (512 bytes), a group of this many events stays
# under 600 KB as a state value and as an exception record.
MAX_GROUP_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class MatchConfig:
    allowed_lateness_ms: int = 5 * MINUTE_MS
    match_window_ms: int = 48 * HOUR_MS
    retention_ms: int = 30 * DAY_MS
    amount_tolerance_minor: int = 0
    amount_tolerance_bps: int = 0
    # Events one (reference, flow, currency) group may hold: a group is one state value and one
    # exception record, both of which must stay far below Kafka's message size limit, and the
    # closing rule's search grows with it. An event beyond it is reported as GROUP_LIMIT.
    max_group_events: int = 1000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 0:
                raise EngineConfigError(f"{f.name} must be a non-negative int, got {value!r}")
        if self.match_window_ms == 0:
            raise EngineConfigError("match_window_ms must be positive")
        if not 1 <= self.max_group_events <= MAX_GROUP_EVENTS:
            raise EngineConfigError(f"max_group_events must be in 1..{MAX_GROUP_EVENTS}")

    def tolerance(self, payment_sum: int) -> int:
        """Allowed |ledger - payment| for a payment-side sum; bps part rounds down (floor)."""
        return max(self.amount_tolerance_minor, self.amount_tolerance_bps * payment_sum // 10_000)

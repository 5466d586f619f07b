"""Cheap reads of a partition's event-time progress (one key), for metrics and heartbeats."""

from __future__ import annotations

from dataclasses import dataclass

from streams.contract.model import Side
from streams.engine import codec, keys
from streams.state.base import KeyValueStore


@dataclass(frozen=True, slots=True)
class Progress:
    watermark_ms: int | None
    payment_max_ms: int | None
    ledger_max_ms: int | None
    payment_offset: int
    ledger_offset: int
    open_groups: int | None  # None: state from before the count, until its next batch

    def max_event_time(self, side: Side) -> int | None:
        return self.payment_max_ms if side is Side.PAYMENT else self.ledger_max_ms

    def applied_offset(self, side: Side) -> int:
        return self.payment_offset if side is Side.PAYMENT else self.ledger_offset


def progress(store: KeyValueStore) -> Progress | None:
    raw = store.get(keys.META)
    if raw is None:
        return None
    meta = codec.decode_meta(raw)
    pay, led = keys.SIDE_CODE[Side.PAYMENT], keys.SIDE_CODE[Side.LEDGER]
    return Progress(
        meta.watermark,
        meta.max_time[pay],
        meta.max_time[led],
        meta.offsets[pay],
        meta.offsets[led],
        meta.open_groups,
    )

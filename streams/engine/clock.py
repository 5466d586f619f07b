"""The watermark clock: each side's greatest event time, and the watermark that follows them.

Like bytewax's ``ClockLogic`` beside its ``WindowerLogic``: the clock only says what time it
is; what the time releases (the buffer, deadlines, purges) is the sweep's business. Its state
is the partition's meta record (:class:`~streams.engine.codec.Meta`), saved with every call.
"""

from __future__ import annotations

from streams.contract.model import Side
from streams.engine import codec, keys
from streams.engine.codec import Meta
from streams.engine.exceptions import PartitionMismatchError
from streams.state.base import KeyValueStore

_PAY = keys.SIDE_CODE[Side.PAYMENT]
_LED = keys.SIDE_CODE[Side.LEDGER]


class WatermarkClock:
    """The watermark is the lower of the two sides' greatest event times minus the allowed
    lateness: unknown until both sides have been seen, and it never moves back."""

    def __init__(self, allowed_lateness_ms: int) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms

    def observe(self, meta: Meta, side_code: int, event_time_ms: int) -> None:
        """An input of one side (event or heartbeat) at ``event_time_ms`` was taken."""
        seen = meta.max_time[side_code]
        if seen is None or event_time_ms > seen:
            meta.max_time[side_code] = event_time_ms
        pay, led = meta.max_time[_PAY], meta.max_time[_LED]
        if pay is None or led is None:
            return
        candidate = min(pay, led) - self.allowed_lateness_ms
        if meta.watermark is None or candidate > meta.watermark:
            meta.watermark = candidate

    def is_late(self, meta: Meta, event_time_ms: int) -> bool:
        """Whether an event is already behind the watermark (the sweep has passed its time)."""
        return meta.watermark is not None and event_time_ms < meta.watermark


def load_meta(store: KeyValueStore, partition: int) -> Meta:
    """The partition's meta record (a fresh one for an empty store); refuses another
    partition's store."""
    raw = store.get(keys.META)
    if raw is None:
        return Meta(partition, [None, None], None, [-1, -1], None, 0)
    meta = codec.decode_meta(raw)
    if meta.partition != partition:
        raise PartitionMismatchError(
            f"store holds partition {meta.partition}, called for partition {partition}"
        )
    return meta

"""Heartbeats: advance a silent input's watermark with a record that carries only a time.

Upstream may send them on purpose (``{"event_time": ...}``), deterministically. With
``RECON_IDLE_TIMEOUT`` set, the worker writes them itself for an input partition that has been
silent that long by the wall clock, at the other input's greatest event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from streams.contract.model import Side


def heartbeat_value(event_time_ms: int) -> bytes:
    return orjson.dumps({"event_time": event_time_ms})


class IdleTracker:
    """Remembers when each (partition, side) last had a record, by a monotonic clock."""

    def __init__(self, idle_timeout_ms: int) -> None:
        self._timeout_s = idle_timeout_ms / 1000
        self._last: dict[tuple[int, Side], float] = {}

    def seen(self, partition: int, side: Side, now: float) -> None:
        self._last[(partition, side)] = now
        # Silence of the other side counts from the moment this partition became active.
        self._last.setdefault((partition, _other(side)), now)

    def idle(self, partitions: Iterable[int], now: float) -> Iterator[tuple[int, Side]]:
        """Sides silent for the timeout on partitions whose other side is not silent."""
        for partition in sorted(set(partitions)):
            for side in (Side.PAYMENT, Side.LEDGER):
                mine = self._last.get((partition, side))
                theirs = self._last.get((partition, _other(side)))
                if mine is None or theirs is None or now - theirs > self._timeout_s:
                    continue
                if now - mine > self._timeout_s:
                    yield partition, side


def _other(side: Side) -> Side:
    return Side.LEDGER if side is Side.PAYMENT else Side.PAYMENT

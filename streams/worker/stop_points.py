"""A fault-injection hook for tests: SIGTERM the worker when its batch cycle reaches a point.

``RECON_FAULT_STOP_AT=<point>:<n>`` sends SIGTERM to the worker itself when the n-th batch
reaches ``<point>``, then waits there, so Faust's shutdown lands exactly at that point of the
cycle. Off unless set; tests use it to prove a graceful stop at any point loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from streams.exceptions import ConfigError

log = logging.getLogger(__name__)

# The points of one batch cycle, in order.
POINTS = ("after_fetch", "after_engine", "after_send", "after_commit", "before_ack")


class StopPoints:
    def __init__(self, spec: str | None) -> None:
        self._point: str | None = None
        self._batch = 0
        self._seen = 0
        if spec:
            point, _, nth = spec.partition(":")
            if point not in POINTS or not nth.isdigit() or int(nth) < 1:
                raise ConfigError(
                    f"RECON_FAULT_STOP_AT={spec!r}: expected <point>:<batch>, point one of {POINTS}"
                )
            self._point, self._batch = point, int(nth)

    def batch_started(self) -> None:
        self._seen += 1

    async def reached(self, point: str) -> None:
        if point != self._point or self._seen != self._batch:
            return
        self._point = None  # once
        log.warning("fault injection: SIGTERM at %s of batch %d", point, self._seen)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(2)  # the shutdown begins while the batch is here

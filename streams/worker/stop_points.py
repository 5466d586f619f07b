"""A fault-injection hook for tests: stop the worker when its batch cycle reaches a point.

``RECON_FAULT_STOP_AT=<point>:<n>`` sends SIGTERM to the worker itself when the n-th batch
reaches ``<point>``, then waits there, so Faust's shutdown lands exactly at that point of the
cycle. ``<point>:<n>:kill`` sends SIGKILL instead: a crash exactly there. Off unless set;
tests use it to prove a stop or a crash at any point loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Iterable

from streams.exceptions import ConfigError
from streams.worker.processor import InputRecord

log = logging.getLogger(__name__)

# The points of one batch cycle, in order.
POINTS = ("after_fetch", "after_engine", "after_send", "after_commit", "before_ack")


class StopPoints:
    def __init__(self, spec: str | None) -> None:
        self._point: str | None = None
        self._batch = 0
        self._seen = 0
        self._signal = signal.SIGTERM
        self._firsts: dict[str, int] = {}
        if spec:
            point, _, rest = spec.partition(":")
            nth, _, how = rest.partition(":")
            if point not in POINTS or not nth.isdigit() or int(nth) < 1 or how not in ("", "kill"):
                raise ConfigError(
                    f"RECON_FAULT_STOP_AT={spec!r}: expected <point>:<batch>[:kill], "
                    f"point one of {POINTS}"
                )
            self._point, self._batch = point, int(nth)
            if how == "kill":
                self._signal = signal.SIGKILL

    def batch_started(self, records: Iterable[InputRecord] = ()) -> None:
        self._seen += 1
        if self._point is not None and self._seen == self._batch:
            # Logged when the stop fires: the offsets the group must not have committed past.
            self._firsts = {}
            for r in records:
                tp = f"{r.topic}[{r.partition}]"
                if r.offset < self._firsts.get(tp, r.offset + 1):
                    self._firsts[tp] = r.offset

    async def reached(self, point: str) -> None:
        if point != self._point or self._seen != self._batch:
            return
        self._point = None  # once
        log.warning(
            "fault injection: %s at %s of batch %d; its first offsets: %s",
            self._signal.name, point, self._seen, json.dumps(self._firsts, sort_keys=True),
        )  # fmt: skip
        logging.shutdown()
        os.kill(os.getpid(), self._signal)
        await asyncio.sleep(2)  # the shutdown begins while the batch is here

"""What the worker tells ops: its metrics per committed chunk, the gauges read at scrape time,
its readiness checks, and the DEBUG lines that name each match and exception.

Kept apart from the app so the app wires things and this module decides what is shown.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.contract.model import ExceptionKind, ExceptionStatus, Rule
from streams.health import Health
from streams.worker import metrics
from streams.worker.processor import BatchResult

log = logging.getLogger("streams.worker.outcomes")

# The business figure (docs/observability.md): a reference's window closed with a match, or
# with an exception that says it did not match within it.
_IN_WINDOW = frozenset({Rule.EXACT, Rule.SPLIT, Rule.TOLERANCE})
_UNMATCHED = frozenset(
    {
        ExceptionKind.MISSING_LEDGER,
        ExceptionKind.MISSING_PAYMENT,
        ExceptionKind.AMOUNT_MISMATCH,
        ExceptionKind.CURRENCY_MISMATCH,
    }
)

# (topic, partition) -> records behind the partition's end, or None when not known yet.
LagSource = Callable[[], Iterable[tuple[str, int, int]]]


class WorkerObserver:
    def __init__(self) -> None:
        self.health = Health(("kafka", "restore"), metrics.READY)
        self.watermarks: dict[int, int] = {}
        self.restore_started: float | None = None
        # (topic, partition) -> next offset to process, as of the last finished batch.
        self.processed: dict[tuple[str, int], int] = {}
        self.lags: LagSource = lambda: ()
        _SCRAPE.observer = self

    # -- per committed chunk -------------------------------------------------------------

    def count(self, result: BatchResult) -> None:
        metrics.CHUNKS.inc()
        # Tallied first: one labelled increment (a lock and a lookup) per label, not per record.
        rules = Counter(m.rule for m in result.matches)
        for rule, n in rules.items():
            metrics.MATCHES.labels(rule.value).inc(n)
        matched = sum(n for rule, n in rules.items() if rule in _IN_WINDOW)
        if matched:
            metrics.SETTLEMENTS.labels("matched_in_window").inc(matched)
        kinds = Counter((e.kind, e.status) for e in result.exceptions)
        for (kind, status), n in kinds.items():
            metrics.EXCEPTIONS.labels(kind.value, status.value).inc(n)
        unmatched = sum(
            n
            for (kind, status), n in kinds.items()
            if status is ExceptionStatus.OPEN and kind in _UNMATCHED
        )
        if unmatched:
            metrics.SETTLEMENTS.labels("unmatched_in_window").inc(unmatched)
        for reason, n in Counter(d.reason for d in result.dead_letters).items():
            metrics.DEAD_LETTERS.labels(reason).inc(n)
        for name, value in result.counters.items():
            metrics.ENGINE_EVENTS.labels(name).inc(value)
        if result.isolated:
            metrics.ISOLATED.inc(result.isolated)
        if result.refetched:
            metrics.REFETCHED.inc(result.refetched)
        for partition, watermark in result.watermarks.items():
            if watermark is not None:
                self.watermarks[partition] = watermark
                metrics.WATERMARK.labels(str(partition)).set(watermark / 1000)
        for partition, groups in result.open_groups.items():
            if groups is not None:
                metrics.OPEN_GROUPS.labels(str(partition)).set(groups)
        if log.isEnabledFor(logging.DEBUG):
            self._log_outcomes(result)

    @staticmethod
    def _log_outcomes(result: BatchResult) -> None:
        for m in result.matches:
            log.debug(
                "match %s: %s %s",
                m.match_id,
                m.rule.value,
                m.reference,
                extra={"match_id": m.match_id, "reference": m.reference, "rule": m.rule.value},
            )
        for e in result.exceptions:
            log.debug(
                "exception %s: %s %s",
                e.exception_id,
                e.kind.value,
                e.status.value,
                extra={
                    "exception_id": e.exception_id,
                    "reference": e.reference,
                    "kind": e.kind.value,
                    "status": e.status.value,
                },
            )
        for d in result.dead_letters:
            log.debug(
                "dead letter: %s",
                d.reason,
                extra={"topic": d.source_topic, "partition": d.partition, "offset": d.offset},
            )

    # -- partitions ----------------------------------------------------------------------

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the gauges of partitions this worker no longer owns: another reports them."""
        gone = set(partitions)
        for key in [k for k in self.processed if k[1] in gone]:
            del self.processed[key]
        for partition in gone:
            self.watermarks.pop(partition, None)
            for gauge in (metrics.WATERMARK, metrics.OPEN_GROUPS):
                with contextlib.suppress(KeyError):
                    gauge.remove(str(partition))

    def restoring(self, active: bool) -> None:
        if active:
            self.restore_started = time.monotonic()
        else:
            if self.restore_started is not None:
                metrics.RESTORE_SECONDS.observe(time.monotonic() - self.restore_started)
            self.restore_started = None


class _ScrapeTime(Collector):
    """Gauges computed when Prometheus scrapes: they follow the wall clock and the broker."""

    observer: WorkerObserver | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        observer = self.observer
        lag = GaugeMetricFamily(
            "recon_watermark_lag_seconds",
            "Wall clock minus the partition's event-time watermark",
            labels=["partition"],
        )
        consumer = GaugeMetricFamily(
            "recon_consumer_lag_records",
            "Input records behind the partition's end (high watermark minus committed offset)",
            labels=["topic", "partition"],
        )
        restore = GaugeMetricFamily(
            "recon_restore_active_seconds",
            "How long the state restore in progress has run (0: none)",
        )
        if observer is not None:
            now = time.time()
            for partition, watermark in sorted(observer.watermarks.items()):
                lag.add_metric([str(partition)], max(now - watermark / 1000, 0.0))
            try:
                for topic, partition, behind in observer.lags():
                    consumer.add_metric([topic, str(partition)], behind)
            except Exception:  # a scrape must answer even while the consumer rebalances
                log.debug("consumer lag not available", exc_info=True)
            started = observer.restore_started
            restore.add_metric([], time.monotonic() - started if started is not None else 0.0)
        else:
            restore.add_metric([], 0.0)
        yield lag
        yield consumer
        yield restore

    def describe(self) -> Iterator[Any]:
        return iter(())


_SCRAPE = _ScrapeTime()
metrics.REGISTRY.register(_SCRAPE)

"""The Kafka side of a sink: consume, batch by size and time, hand batches to a :class:`Sink`.

Exactly-once into the store: the store keeps the offsets (see :class:`connectors.base.Sink`).
On every assignment the loop seeks to ``stored + 1`` (no row: the beginning); Kafka's own
committed offsets are written asynchronously after each store commit, for monitoring only.

Batches are written on a writer thread, one at a time, while this thread reads and prepares
(decodes) the next: the store's work and ours overlap. A batch is handed over only after the
one before it committed, so batches still commit in order; at most two are in memory.

When the store is unavailable the loop keeps its batch (the failed one and what came after,
in order), pauses every assigned partition (so no new records pile up: the batch cap bounds
memory), keeps calling ``consume`` so the group membership stays alive, retries after an
exponential backoff with jitter (:func:`streams.backoff.backoff_s`), and resumes once a write
succeeds; retries are written from this thread. A stop request (SIGTERM) flushes the batch, commits and returns 0.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from connectors import metrics
from connectors.base import BatchResult, Sink, SinkRecord, TopicPartitionKey
from connectors.exceptions import SinkUnavailableError
from streams.backoff import backoff_s

log = logging.getLogger(__name__)

#: Exit code when ``max_retries`` consecutive attempts failed.
EXIT_RETRIES_EXHAUSTED = 3
#: Exit code when the last batch could not be written before the shutdown timeout.
EXIT_UNFLUSHED = 1
#: How often the consumer lag gauges are refreshed (from the consumer's cached watermarks).
LAG_INTERVAL_S = 5.0


@dataclass(frozen=True, slots=True)
class LoopSettings:
    batch_size: int = 5000
    linger_ms: int = 50
    max_retries: int = -1
    retry_backoff_ms: int = 200
    retry_backoff_max_ms: int = 10_000
    shutdown_timeout_ms: int = 30_000
    #: Upper bound of one ``consume`` call, so stop requests and retries are noticed quickly.
    poll_interval_ms: int = 100


class SinkLoop:
    """Drives one consumer and one sink. Not thread-safe: run it from one thread (it starts
    its own writer thread)."""

    def __init__(
        self,
        consumer: Any,
        sink: Sink,
        topics: Sequence[str],
        settings: LoopSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._sink = sink
        self._topics = list(dict.fromkeys(topics))  # a topic subscribed twice is an error
        self._s = settings
        self._clock = clock
        self._batch: list[SinkRecord] = []
        self._batch_started: float | None = None
        self._assigned: set[TopicPartitionKey] = set()
        self._pending_seek: set[TopicPartitionKey] = set()
        self._paused = False
        self._failures = 0
        self._retry_at: float | None = None
        self.records_written = 0
        self.batches_written = 0
        # The batch being written on the writer thread, and its records.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sink-writer")
        self._inflight: Future[BatchResult] | None = None
        self._inflight_batch: list[SinkRecord] = []
        # Next offset to store per assigned partition (None: from the beginning), for the lag.
        self._next: dict[TopicPartitionKey, int | None] = {}
        self._lag_due = 0.0
        #: Monotonic time of the loop's last turn: the sink's liveness.
        self.last_turn = time.monotonic()

    # -- rebalance callbacks ---------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        try:
            stored = self._sink.stored_offsets(keys)
        except SinkUnavailableError as exc:
            # Assign now, fetch nothing: the seek happens once the store answers again.
            log.warning("store unavailable on assignment, partitions held paused: %s", exc)
            consumer.assign(partitions)
            consumer.pause(partitions)
            self._pending_seek.update(keys)
            self._assigned.update(keys)
            return
        for tp, key in zip(partitions, keys, strict=True):
            tp.offset = stored[key] + 1 if key in stored else OFFSET_BEGINNING
            self._next[key] = stored[key] + 1 if key in stored else None
        consumer.assign(partitions)
        if self._paused:
            consumer.pause(partitions)
        self._assigned.update(keys)
        log.info(
            "assigned %s",
            {f"{t}[{p}]": tp.offset for (t, p), tp in zip(keys, partitions, strict=True)},
        )

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        # The batch in flight commits before the partitions go; if it fails, its records are
        # back in the batch, handled below.
        with contextlib.suppress(SinkUnavailableError):
            self._collect()
        if self._batch and any((r.topic, r.partition) in keys for r in self._batch):
            try:
                self._write()
            except SinkUnavailableError:
                # Not ours any more: the next owner resumes from the store's offsets.
                self._batch = [r for r in self._batch if (r.topic, r.partition) not in keys]
                if not self._batch:
                    self._batch_started = None
        self._assigned -= keys
        self._pending_seek -= keys
        for topic, partition in keys:
            self._next.pop((topic, partition), None)
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(topic, str(partition))
        log.info("revoked %d partitions", len(keys))

    # -- main loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            while not stop.is_set():
                self.last_turn = time.monotonic()
                if self.last_turn >= self._lag_due:
                    self._report_lag()
                if self._pending_seek:
                    self._resolve_pending_seeks()
                self._poll()
                if self._inflight is not None and self._inflight.done():
                    try:
                        self._collect()
                    except SinkUnavailableError as exc:
                        self._failed(exc)
                if self._flush_due():
                    self._try_flush()
                    if 0 <= self._s.max_retries < self._failures:
                        log.error("giving up after %d failed attempts", self._failures)
                        return EXIT_RETRIES_EXHAUSTED
            return self._shutdown()
        finally:
            self._consumer.close()
            self._writer.shutdown(wait=True)

    def _poll(self) -> None:
        now = self._clock()
        timeout = self._s.poll_interval_ms / 1000
        if self._batch_started is not None:
            timeout = min(timeout, max(0.0, self._batch_started + self._s.linger_ms / 1000 - now))
        if self._retry_at is not None:
            timeout = min(timeout, max(0.0, self._retry_at - now))
        room = self._s.batch_size - len(self._batch)
        # Paused or full: still call consume (group membership, callbacks), take at most one
        # straggler fetched before the pause.
        n = 1 if self._paused or room <= 0 else min(room, 10_000)
        for msg in self._consumer.consume(num_messages=n, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            topic, partition = msg.topic(), msg.partition()
            if (topic, partition) in self._pending_seek:
                continue  # fetched before its seek: will be read again from the stored offset
            ts_type, ts = msg.timestamp()
            self._batch.append(
                SinkRecord(
                    topic,
                    partition,
                    msg.offset(),
                    ts if ts_type != TIMESTAMP_NOT_AVAILABLE else -1,
                    msg.key(),
                    msg.value(),
                )
            )
            if self._batch_started is None:
                self._batch_started = self._clock()

    def _report_lag(self) -> None:
        """Records not yet stored, per assigned partition: the end of the partition as the
        consumer last saw it (no request) minus the next offset to store."""
        self._lag_due = time.monotonic() + LAG_INTERVAL_S
        # A partition with nothing held here is stored up to the consumer's position, which
        # is past the transaction markers that end it (they are offsets too, never records).
        held = {(r.topic, r.partition) for r in (*self._batch, *self._inflight_batch)}
        for (topic, partition), next_offset in list(self._next.items()):
            tp = TopicPartition(topic, partition)
            try:
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                start = next_offset if next_offset is not None else max(low, 0)
                if (topic, partition) not in held:
                    position = self._consumer.position([tp])[0].offset
                    start = max(start, position)
            except KafkaException:
                continue
            if high < 0:
                continue  # nothing fetched from it yet
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(high - start, 0))

    def _flush_due(self) -> bool:
        if not self._batch or self._batch_started is None:
            return False
        now = self._clock()
        if self._retry_at is not None:
            return now >= self._retry_at
        return len(self._batch) >= self._s.batch_size or (
            now - self._batch_started >= self._s.linger_ms / 1000
        )

    def _write(self) -> None:
        """Write the batch from this thread; on success commit to Kafka (informative) and
        clear it. Raises SinkUnavailableError with the batch kept."""
        self._collect()  # a batch in flight commits first (and on failure joins this one)
        batch = self._batch
        self._written(batch, self._sink.write_batch(batch))
        self._batch = []
        self._batch_started = None

    def _hand_over(self) -> None:
        """Prepare the batch here and write it on the writer thread, once the batch before it
        committed. Raises SinkUnavailableError (with the batches kept) when that one failed."""
        batch = self._batch
        prepared = self._sink.prepare(batch)  # overlaps the write in flight
        self._collect()
        self._inflight = self._writer.submit(self._sink.write_batch, batch, prepared)
        self._inflight_batch = batch
        self._batch = []
        self._batch_started = None

    def _collect(self) -> None:
        """Wait for the batch in flight. On failure its records go back in front of the
        current batch (they come first in every partition) and SinkUnavailableError is raised."""
        future, batch = self._inflight, self._inflight_batch
        if future is None:
            return
        self._inflight, self._inflight_batch = None, []
        try:
            result = future.result()
        except SinkUnavailableError:
            self._batch = batch + self._batch
            if self._batch_started is None:
                self._batch_started = self._clock()
            raise
        self._written(batch, result)

    def _written(self, batch: list[SinkRecord], result: BatchResult) -> None:
        offsets: dict[TopicPartitionKey, int] = {}
        for r in batch:
            offsets[(r.topic, r.partition)] = max(offsets.get((r.topic, r.partition), -1), r.offset)
        self.records_written += len(batch)
        self.batches_written += result.transactions
        for key, last in offsets.items():
            if key in self._assigned:
                self._next[key] = last + 1
        commit = [
            TopicPartition(t, p, o + 1) for (t, p), o in offsets.items() if (t, p) in self._assigned
        ]
        if commit:
            try:
                self._consumer.commit(offsets=commit, asynchronous=True)
            except KafkaException as exc:
                log.debug("informative Kafka commit failed: %s", exc)

    def _try_flush(self) -> bool:
        try:
            if self._failures:
                self._write()  # retries: from this thread, one batch at a time
            else:
                self._hand_over()
        except SinkUnavailableError as exc:
            self._failed(exc)
            return False
        if self._failures:
            log.info("store back after %d failed attempts", self._failures)
        self._failures = 0
        self._retry_at = None
        self._resume()
        return True

    def _failed(self, exc: SinkUnavailableError) -> None:
        """A write failed: hold the batch, pause, retry after a backoff."""
        self._failures += 1
        metrics.RETRIES.labels("unavailable").inc()
        delay = self._backoff()
        self._retry_at = self._clock() + delay
        if self._failures == 1 or self._failures % 10 == 0:
            log.warning(
                "store unavailable (attempt %d), holding %d records, retry in %.2fs: %s",
                self._failures,
                len(self._batch),
                delay,
                exc,
            )
        self._pause()

    def _backoff(self) -> float:
        return backoff_s(
            max(self._failures, 1), self._s.retry_backoff_ms, self._s.retry_backoff_max_ms
        )

    def _pause(self) -> None:
        if self._paused:
            return
        self._paused = True
        parts = [TopicPartition(t, p) for t, p in self._assigned]
        if parts:
            self._consumer.pause(parts)

    def _resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        parts = [TopicPartition(t, p) for t, p in self._assigned - self._pending_seek]
        if parts:
            self._consumer.resume(parts)

    def _resolve_pending_seeks(self) -> None:
        if self._retry_at is not None and self._clock() < self._retry_at:
            return
        keys = sorted(self._pending_seek)
        try:
            stored = self._sink.stored_offsets(keys)
        except SinkUnavailableError:
            self._failures += 1
            self._retry_at = self._clock() + self._backoff()
            return
        for key in keys:
            offset = stored[key] + 1 if key in stored else OFFSET_BEGINNING
            try:
                self._consumer.seek(TopicPartition(key[0], key[1], offset))
            except KafkaException as exc:
                log.debug("seek %s deferred: %s", key, exc)
                continue
            self._pending_seek.discard(key)
            self._next[key] = offset if key in stored else None
            if not self._paused:
                self._consumer.resume([TopicPartition(key[0], key[1])])
        if not self._pending_seek and not self._batch and self._inflight is None:
            self._failures = 0
            self._retry_at = None

    def _shutdown(self) -> int:
        deadline = self._clock() + self._s.shutdown_timeout_ms / 1000
        with contextlib.suppress(SinkUnavailableError):  # then back in the batch, written below
            self._collect()
        while self._batch:
            try:
                self._write()
            except SinkUnavailableError as exc:
                if self._clock() >= deadline:
                    log.error(
                        "stopping with %d unwritten records (%s); they will be re-read",
                        len(self._batch),
                        exc,
                    )
                    return EXIT_UNFLUSHED
                self._failures += 1
                time.sleep(min(self._backoff(), max(0.0, deadline - self._clock())))
        try:
            self._sink.flush()
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            log.debug("final informative commit: %s", exc)
        return 0

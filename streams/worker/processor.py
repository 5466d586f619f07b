"""The per-batch adapter between Kafka records and the engine: no Faust in here.

It decodes and validates each record, dead-letters what is invalid, on the wrong partition or
implausibly far ahead in event time, feeds the rest to the engine in offset order per
partition through a partition transaction, encodes the outputs, and prepares each partition's
transaction once per call (its owner commits it, or the processor does when it has none). What to send comes back as plain lists, errors as their own stream (dead
letters), bytewax style.

A batch goes out in one or more chunks (:class:`BatchRun`): a chunk is what one Kafka
transaction carries. An engine call's sweep is bounded by ``sweep_chunk`` steps, so a released
backlog becomes many chunks of bounded size and memory instead of one record or transaction
that grows with it.

A failure tied to one record (the engine raises on it, or one of its outputs cannot be encoded
or is too large to send) never stops the partition: the partition's call is replayed one
record at a time and only the record at fault is dead-lettered (``PROCESSING_ERROR``).

No record is skipped. The state holds the highest offset applied per input partition (dead
letters included, as :class:`Consumed`), so a batch that starts past the next offset shows that
the consumer skipped records, which Faust's consumer does across a rebalance (docs/delivery.md,
"Skipped records"). Those records are read again from Kafka (``refetch``) and applied first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from streams.contract import bounded_dead_letter
from streams.contract.codec import OutputCodec
from streams.contract.decode import InputDecoder, Rejection, RejectReason, dead_letter
from streams.contract.model import (
    Consumed,
    DeadLetter,
    ExceptionRecord,
    Heartbeat,
    InputEvent,
    MatchRecord,
    Side,
)
from streams.engine.engine import MatchingEngine
from streams.engine.outbox import COUNTERS, EngineOutput
from streams.engine.progress import progress
from streams.exceptions import ReconError
from streams.settings import TopicNames
from streams.state.base import KeyValueStore
from streams.state.transaction import PartitionTransaction
from streams.worker.partitioning import partition_for

log = logging.getLogger(__name__)


class InputRecord(Protocol):
    """An input record as Kafka gave it: aiokafka's ``ConsumerRecord`` (the worker's batches)
    and :class:`RawRecord` (re-reads, tests) both are one, so no record is copied."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None:
        """The record's Kafka timestamp (epoch ms), None when it has none."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None  # epoch ms


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One encoded output record; ``partition`` None: by key (murmur2)."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass(slots=True)
class BatchResult:
    matches: list[MatchRecord] = field(default_factory=list)
    exceptions: list[ExceptionRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Every output above, encoded, in emission order per partition.
    outgoing: list[Outgoing] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    # Event-time watermark per partition after the chunk (for metrics).
    watermarks: dict[int, int | None] = field(default_factory=dict)
    # Groups waiting for their counterpart per partition after the chunk (for metrics).
    open_groups: dict[int, int | None] = field(default_factory=dict)
    # Records isolated because the engine or their outputs failed on them.
    isolated: int = 0
    # Records the consumer skipped, read again from Kafka.
    refetched: int = 0

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def extend(self, other: BatchResult) -> None:
        self.matches += other.matches
        self.exceptions += other.exceptions
        self.dead_letters += other.dead_letters
        self.outgoing += other.outgoing
        for name, n in other.counters.items():
            self.count(name, n)
        self.watermarks.update(other.watermarks)
        self.open_groups.update(other.open_groups)
        self.isolated += other.isolated
        self.refetched += other.refetched


class OutputTooLargeError(ReconError):
    """An output record is larger than the worker may send."""


# Reads (topic, partition, start, end, limit) again: the first ``limit`` records at offsets
# start <= o < end.
Refetch = Callable[[str, int, int, int, int], list["RawRecord"]]
Item = InputEvent | Heartbeat | Consumed


@dataclass(slots=True)
class _PartitionWork:
    items: list[tuple[InputRecord, Item]]
    isolating: bool = False  # the engine failed on the batch: one record per call from now


class BatchRun:
    """The work left of one batch, taken a chunk at a time (one transaction each).

    Call :meth:`next_chunk` until :attr:`done`. Between chunks, the chunk's state changes must
    be made durable (the worker commits them with the chunk's outputs): the next chunk reads
    the stores they went to.
    """

    def __init__(self, processor: BatchProcessor, records: Sequence[InputRecord]) -> None:
        self._processor = processor
        self._admission = BatchResult()
        self._work: dict[int, _PartitionWork] = {}
        for record in processor.without_gaps(records, self._admission):
            item: Item | None = processor.admit(record, self._admission)
            work = self._work.get(record.partition)
            if work is None:
                work = self._work[record.partition] = _PartitionWork([])
            if item is None:
                side = processor.side_of(record.topic)
                # A dead letter's offset counts as read: the next record follows it.
                item = Consumed(side, record.offset) if side is not None else None
            if item is not None:
                work.items.append((record, item))
        self._started = False

    @property
    def done(self) -> bool:
        return self._started and not self._work

    def next_chunk(self) -> BatchResult:
        result = BatchResult()
        if not self._started:
            self._started = True
            self._processor.encode_dead_letters(self._admission.dead_letters, result)
            result.refetched = self._admission.refetched
        for partition in list(self._work):
            work = self._work[partition]
            paused = self._processor.run_partition(partition, work, result)
            if not paused and not work.items:
                del self._work[partition]
            if paused:
                break  # this chunk has its share of sweep steps: the rest in the next
        return result


class BatchProcessor:
    def __init__(
        self,
        engine: MatchingEngine,
        topics: TopicNames,
        partitions: int,
        store_for: Callable[[int], KeyValueStore],
        decoder: InputDecoder | None = None,
        *,
        sweep_chunk: int | None = None,
        max_event_time_ahead_ms: int = 0,
        max_record_bytes: int = 900_000,
        refetch: Refetch | None = None,
        refetch_limit: int = 2000,
        begin: Callable[[int], PartitionTransaction] | None = None,
    ) -> None:
        """``store_for(partition)``: the partition's committed state. ``begin(partition)``: a
        transaction over it whose owner (the worker's checkpoint) commits it after the Kafka
        transaction; without one, the processor commits each transaction it prepared."""
        self._engine = engine
        self._topics = topics
        self._sides = {topics.payments: Side.PAYMENT, topics.ledger: Side.LEDGER}
        self._partitions = partitions
        self._store_for = store_for
        self._decoder = decoder or InputDecoder()
        self._codec = OutputCodec()
        self._sweep_chunk = sweep_chunk
        self._max_ahead = max_event_time_ahead_ms
        self._max_bytes = max_record_bytes
        self._refetch = refetch
        self._refetch_limit = refetch_limit
        self._begin = begin
        # aiokafka's murmur2 is pure Python (~5 us); a reference's events share its partition.
        self._partition_of = lru_cache(maxsize=1 << 16)(
            lambda reference: partition_for(reference.encode(), partitions)
        )

    def side_of(self, topic: str) -> Side | None:
        return self._sides.get(topic)

    def without_gaps(
        self, records: Sequence[InputRecord], result: BatchResult
    ) -> Sequence[InputRecord]:
        """The batch with the records the consumer skipped read again and put first: every
        input partition's records follow on from the highest offset its state has applied.

        At most ``refetch_limit`` records are read again per gap. When a gap holds more, the
        partition's records after it wait (Faust may ack them: the state still shows the rest
        of the gap, so the next batch reads on from there)."""
        if self._refetch is None:
            return records
        following: dict[tuple[str, int], int | None] = {}
        cut: set[tuple[str, int]] = set()  # a gap read in part: the rest of the batch waits
        out: list[InputRecord] = []
        for record in records:
            side = self._sides.get(record.topic)
            if side is None:
                out.append(record)
                continue
            tp = (record.topic, record.partition)
            if tp in cut:
                continue
            if tp in following:
                expected = following[tp]
            else:
                state = progress(self._store_for(record.partition))
                applied = state.applied_offset(side) if state else -1
                expected = applied + 1 if applied >= 0 else None
            if expected is not None and record.offset > expected:
                limit = self._refetch_limit
                missing = self._refetch(*tp, expected, record.offset, limit)
                log.warning(
                    "%s[%d]: the consumer skipped offsets %d..%d; read %d records again",
                    record.topic, record.partition, expected, record.offset - 1, len(missing),
                )  # fmt: skip
                result.refetched += len(missing)
                out += missing
                if len(missing) >= limit:
                    cut.add(tp)
                    continue
            out.append(record)
            if expected is None or record.offset >= expected:
                following[tp] = record.offset + 1
            else:
                following[tp] = expected  # an older record again: a redelivery
        return out

    def start(self, records: Sequence[InputRecord]) -> BatchRun:
        return BatchRun(self, records)

    def process(self, records: Sequence[InputRecord]) -> BatchResult:
        """Process one batch whole, all its chunks in one result (for callers that make the
        stores durable only at the end: tests, benches)."""
        run = self.start(records)
        result = run.next_chunk()
        while not run.done:
            result.extend(run.next_chunk())
        return result

    # ------------------------------------------------------------------ one partition

    def run_partition(self, partition: int, work: _PartitionWork, result: BatchResult) -> bool:
        """One engine call (or one record at a time when isolating) on a partition's remaining
        items; returns whether the sweep paused on its budget."""
        begin = self._begin
        store = (
            begin(partition)
            if begin is not None
            else PartitionTransaction(self._store_for(partition), partition)
        )
        paused = False
        if not work.isolating:
            try:
                out = self._engine.on_batch(
                    store, partition, [item for _, item in work.items], self._sweep_chunk
                )
                chunk = self._encode(out)
            except ReconError:
                store.rollback()
                work.isolating = True
            else:
                del work.items[: out.consumed]
                paused = out.paused
                result.extend(chunk)
        if work.isolating:
            paused = self._isolate(store, partition, work, result)
        try:
            state = progress(store)
        except ReconError:
            state = None  # corrupt partition state: its records are already parked
        store.prepare()
        if begin is None:
            store.commit()
        result.watermarks[partition] = state.watermark_ms if state else None
        result.open_groups[partition] = state.open_groups if state else None
        return paused

    def _isolate(
        self, store: PartitionTransaction, partition: int, work: _PartitionWork, result: BatchResult
    ) -> bool:
        """Replay a failed call one record at a time, so only the record at fault is parked."""
        while work.items:
            record, item = work.items[0]
            out = self._attempt(store, partition, [item], result, record)
            if out is not None and out.consumed == 0:
                return True  # waits for a sweep that paused: resume in the next chunk
            del work.items[0]
            if out is not None and out.paused:
                return True
        # No items left, but a sweep may still be pending from them.
        out = self._attempt(store, partition, [], result, None)
        return out is not None and out.paused

    def _attempt(
        self,
        store: KeyValueStore,
        partition: int,
        items: list[Item],
        result: BatchResult,
        record: InputRecord | None,
    ) -> EngineOutput | None:
        # Each record in its own transaction: a failure leaves none of its writes behind.
        attempt = PartitionTransaction(store, partition)
        try:
            out = self._engine.on_batch(attempt, partition, items, self._sweep_chunk)
            chunk = self._encode(out)
        except ReconError as exc:
            attempt.fail()
            result.isolated += 1
            if record is None:
                # A sweep step failed with no input to blame (corrupt state): it stays
                # pending, and is tried again with the partition's next batch.
                log.error("partition %d: sweep failed: %s", partition, exc)
                return None
            if isinstance(items[0], Consumed):
                return None  # a dead letter already: only its offset was to be recorded
            reference = record.key.decode(errors="replace")[:128] if record.key else None
            log.error(
                "isolated record %s[%d]@%d (reference %r): %s: %s",
                record.topic, record.partition, record.offset, reference,
                type(exc).__name__, exc,
            )  # fmt: skip
            self._dead(
                record, RejectReason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}", result
            )
            return None
        attempt.prepare()
        attempt.commit()
        result.extend(chunk)
        return out

    # ------------------------------------------------------------------ outputs

    def _encode(self, out: EngineOutput) -> BatchResult:
        """The engine's outputs as a chunk result, every record encoded and within the size
        limit; raises (so the call is isolated) when one is not."""
        chunk = BatchResult(matches=out.matches, exceptions=out.exceptions)
        t, codec, outgoing = self._topics, self._codec, chunk.outgoing
        for m in out.matches:
            outgoing.append(self._sized(t.matched, m.reference.encode(), codec.encode_match(m)))
        for e in out.exceptions:
            key = e.reference.encode()
            outgoing.append(self._sized(t.exceptions, key, codec.encode_exception(e)))
        for name in COUNTERS:
            value = getattr(out, name)
            if value:
                chunk.count(name, value)
        return chunk

    def _sized(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> Outgoing:
        if len(key) + len(value) > self._max_bytes:
            raise OutputTooLargeError(
                f"a {len(value)}-byte record for {topic} is over the {self._max_bytes}-byte limit"
            )
        return Outgoing(topic, key, value, partition)

    def encode_dead_letters(self, dead_letters: list[DeadLetter], result: BatchResult) -> None:
        for d in dead_letters:
            # On its source partition, so a partition's dead letters stay in order.
            result.dead_letters.append(d)
            result.outgoing.append(
                Outgoing(self._topics.dlq, d.key, self._codec.encode_dead_letter(d), d.partition)
            )

    # ------------------------------------------------------------------ admission

    def admit(self, record: InputRecord, result: BatchResult) -> InputEvent | Heartbeat | None:
        """Decode and validate; a record that cannot go to the engine becomes a dead letter."""
        side = self._sides.get(record.topic)
        if side is None:
            result.dead_letters.append(
                self._dead_letter(
                    record,
                    RejectReason.UNKNOWN_TOPIC,
                    "record from a topic this worker does not read",
                )
            )
            return None
        item = self._decoder.decode(side, record.key, record.value, record.offset)
        if isinstance(item, Rejection):
            result.dead_letters.append(
                dead_letter(
                    record.topic, record.partition, record.offset, record.key, record.value, item
                )
            )
            return None
        ahead, stamp = self._max_ahead, record.timestamp
        if ahead and stamp is not None and stamp >= 0 and item.event_time_ms > stamp + ahead:
            detail = (
                f"event time {item.event_time_ms} is {item.event_time_ms - stamp} ms ahead of "
                f"the record's Kafka timestamp {stamp}; more than {ahead} ms "
                "(RECON_MAX_EVENT_TIME_AHEAD) is taken as a clock or producer fault, since it "
                "would move the partition's watermark past every other event"
            )
            reason = RejectReason.BAD_EVENT_TIME.value
            result.dead_letters.append(self._dead_letter(record, reason, detail))
            return None
        if isinstance(item, InputEvent):
            expected = self._partition_of(item.reference)
            if expected != record.partition:
                detail = (
                    f"reference {item.reference!r} belongs on partition {expected} by murmur2, "
                    f"but arrived on {record.partition}: the producer must partition by the "
                    "reference with Kafka's murmur2 partitioner (confluent-kafka: "
                    "partitioner=murmur2_random); fix it and resend"
                )
                result.dead_letters.append(
                    self._dead_letter(record, RejectReason.KEY_MISMATCH, detail)
                )
                return None
        return item

    def _dead(self, record: InputRecord, reason: str, detail: str, result: BatchResult) -> None:
        self.encode_dead_letters([self._dead_letter(record, reason, detail)], result)

    @staticmethod
    def _dead_letter(record: InputRecord, reason: str, detail: str) -> DeadLetter:
        # A bounded prefix of the raw bytes with their size and digest: always sendable.
        return bounded_dead_letter(
            record.topic, record.partition, record.offset, record.key, record.value, reason, detail
        )

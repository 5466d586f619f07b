"""The per-batch adapter between Kafka records and the engine: no Faust in here.

It decodes and validates each record, dead-letters what is invalid or on the wrong partition,
feeds the rest to the engine in offset order per partition through a write-batching overlay, and
flushes each partition's state once per batch. What to send comes back as plain lists, errors
as their own stream (dead letters), bytewax style.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache

from streams.contract.decode import InputDecoder, Rejection, dead_letter
from streams.contract.model import (
    DeadLetter,
    ExceptionRecord,
    Heartbeat,
    InputEvent,
    MatchRecord,
    Side,
)
from streams.engine.engine import MatchingEngine
from streams.engine.progress import progress
from streams.engine.views import EngineOutput
from streams.exceptions import ReconError
from streams.settings import TopicNames
from streams.state.base import KeyValueStore
from streams.state.batching import BatchingStore
from streams.worker.partitioning import partition_for

WRONG_PARTITION = "KEY_MISMATCH"
_COUNTERS = tuple(f.name for f in fields(EngineOutput) if f.type in ("int", int))
PROCESSING_ERROR = "PROCESSING_ERROR"
UNKNOWN_TOPIC = "UNKNOWN_TOPIC"


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class BatchResult:
    matches: list[MatchRecord] = field(default_factory=list)
    exceptions: list[ExceptionRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    # Event-time watermark per partition after the batch (for metrics).
    watermarks: dict[int, int | None] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class BatchProcessor:
    def __init__(
        self,
        engine: MatchingEngine,
        topics: TopicNames,
        partitions: int,
        store_for: Callable[[int], KeyValueStore],
        decoder: InputDecoder | None = None,
    ) -> None:
        self._engine = engine
        self._sides = {topics.payments: Side.PAYMENT, topics.ledger: Side.LEDGER}
        self._partitions = partitions
        self._store_for = store_for
        self._decoder = decoder or InputDecoder()
        # aiokafka's murmur2 is pure Python (~5 us); a reference's events share its partition.
        self._partition_of = lru_cache(maxsize=1 << 16)(
            lambda reference: partition_for(reference.encode(), partitions)
        )

    def process(
        self, records: Sequence[RawRecord], committed: Mapping[tuple[str, int], int] | None = None
    ) -> BatchResult:
        """Process one batch. ``committed`` maps (input topic, partition) to Kafka's committed
        offset, below which the engine may forget the outputs it kept for re-emission."""
        result = BatchResult()
        by_partition: dict[int, list[RawRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        for partition, batch in by_partition.items():
            store = BatchingStore(self._store_for(partition))
            admitted = [(r, item) for r in batch if (item := self._admit(r, result)) is not None]
            try:
                # One call per partition and batch: the watermark sweep runs once, not per record.
                out = self._engine.on_batch(store, partition, [item for _, item in admitted])
                self._collect(out, result)
            except ReconError:
                store.discard()
                self._isolate(store, admitted, result)
            try:
                if committed:
                    for topic, side in self._sides.items():
                        offset = committed.get((topic, partition))
                        if offset is not None:
                            self._engine.on_committed(store, partition, side, offset)
                state = progress(store)
            except ReconError:
                # Corrupt partition state: its records are already parked; keep the others going.
                state = None
            store.flush()
            result.watermarks[partition] = state.watermark_ms if state else None
        return result

    def _admit(self, record: RawRecord, result: BatchResult) -> InputEvent | Heartbeat | None:
        """Decode and validate; a record that cannot go to the engine becomes a dead letter."""
        side = self._sides.get(record.topic)
        if side is None:
            result.dead_letters.append(
                self._dead(record, UNKNOWN_TOPIC, "record from a topic this worker does not read")
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
        if isinstance(item, InputEvent):
            expected = self._partition_of(item.reference)
            if expected != record.partition:
                detail = (
                    f"reference {item.reference!r} belongs on partition {expected} by murmur2, "
                    f"but arrived on {record.partition}: the producer must partition by the "
                    "reference with Kafka's murmur2 partitioner (confluent-kafka: "
                    "partitioner=murmur2_random); fix it and resend"
                )
                result.dead_letters.append(self._dead(record, WRONG_PARTITION, detail))
                return None
        return item

    def _isolate(
        self,
        store: KeyValueStore,
        admitted: list[tuple[RawRecord, InputEvent | Heartbeat]],
        result: BatchResult,
    ) -> None:
        """Replay a failed batch one record at a time, so only the record at fault is parked."""
        for record, item in admitted:
            # Each record in its own overlay: a failure leaves none of its writes behind.
            attempt = BatchingStore(store)
            try:
                out = self._engine.on_item(attempt, record.partition, item)
            except ReconError as exc:
                attempt.discard()
                result.dead_letters.append(
                    self._dead(record, PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
                )
                continue
            attempt.flush()
            self._collect(out, result)

    @staticmethod
    def _collect(out: EngineOutput, result: BatchResult) -> None:
        result.matches.extend(out.matches)
        result.exceptions.extend(out.exceptions)
        for name in _COUNTERS:
            value = getattr(out, name)
            if value:
                result.count(name, value)

    @staticmethod
    def _dead(record: RawRecord, reason: str, detail: str) -> DeadLetter:
        return DeadLetter(
            record.topic, record.partition, record.offset, record.key, record.value, reason, detail
        )

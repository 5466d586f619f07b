"""The sink loop (connectors/loop.py) on its own: no broker, no database, a clock the test moves.

The consumer is a stand-in for confluent-kafka's (the loop takes any object with its methods):
it serves in-memory partition logs, honours assign, seek, pause and resume, and runs the test's
``on_turn`` at every ``consume``. The store is :class:`MemorySink`, a real :class:`Sink` that
keeps rows and offsets in memory and can be told to be unavailable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition

from connectors.base import BatchResult, Sink, SinkRecord, TopicPartitionKey
from connectors.exceptions import SinkUnavailableError
from connectors.loop import EXIT_RETRIES_EXHAUSTED, EXIT_UNFLUSHED, LoopSettings, SinkLoop

TOPIC = "recon.matched"
MAX_TURNS = 2_000  # a loop that never gets there fails instead of hanging


class Clock:
    """Monotonic seconds that move only when the test moves them."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Message:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes
    _value: bytes

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, 1_767_225_600_000 + self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value


@dataclass
class Consumer:
    """In-memory partition logs behind confluent-kafka's Consumer methods the loop calls."""

    logs: dict[TopicPartitionKey, list[bytes]]
    on_turn: Callable[[int], None] = lambda turn: None
    turns: int = 0
    position: dict[TopicPartitionKey, int] = field(default_factory=dict)
    paused: set[TopicPartitionKey] = field(default_factory=set)
    commits: list[tuple[TopicPartitionKey, int]] = field(default_factory=list)
    closed: bool = False
    _callbacks: dict[str, Callable[..., None]] = field(default_factory=dict)

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        assert topics == [TOPIC]
        self._callbacks = callbacks

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.turns += 1
        if self.turns > MAX_TURNS:
            raise AssertionError(f"the loop took {MAX_TURNS} turns")
        if self.turns == 1:  # the group assigns every partition on the first poll
            self._callbacks["on_assign"](self, [TopicPartition(t, p) for t, p in self.logs])
        self.on_turn(self.turns)
        out: list[Message] = []
        for key in sorted(self.position):
            while key not in self.paused and self.position[key] < len(self.logs[key]):
                if len(out) == num_messages:
                    return out
                offset = self.position[key]
                out.append(Message(*key, offset, b"REF", self.logs[key][offset]))
                self.position[key] += 1
        if not out:
            time.sleep(0.001)  # let the writer thread finish its batch
        return out

    def revoke(self, keys: Iterable[TopicPartitionKey]) -> None:
        keys = list(keys)
        self._callbacks["on_revoke"](self, [TopicPartition(t, p) for t, p in keys])
        for key in keys:
            self.position.pop(key, None)

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.position[(tp.topic, tp.partition)] = 0 if tp.offset < 0 else tp.offset

    def seek(self, tp: TopicPartition) -> None:
        self.position[(tp.topic, tp.partition)] = 0 if tp.offset < 0 else tp.offset

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def commit(
        self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> None:
        self.commits.extend(((tp.topic, tp.partition), tp.offset) for tp in offsets or ())

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, len(self.logs[(tp.topic, tp.partition)])

    def close(self) -> None:
        self.closed = True


class MemorySink(Sink):
    """Rows and offsets in memory; ``unavailable`` makes the next writes fail as a store outage."""

    def __init__(self, offsets: dict[TopicPartitionKey, int] | None = None) -> None:
        self.offsets = dict(offsets or {})
        self.rows: list[SinkRecord] = []
        self.batches: list[int] = []
        self.attempts = 0
        self.unavailable = 0
        self.flushed = False
        self.on_write: Callable[[], None] = lambda: None
        self._lock = threading.Lock()

    def open(self) -> None:
        pass

    def stored_offsets(
        self, partitions: Iterable[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, int]:
        return {key: self.offsets[key] for key in partitions if key in self.offsets}

    def write_batch(self, records: Sequence[SinkRecord], prepared: object = None) -> BatchResult:
        with self._lock:
            self.attempts += 1
            self.on_write()
            if self.unavailable:
                self.unavailable -= 1
                raise SinkUnavailableError("store down")
            self.rows.extend(records)
            self.batches.append(len(records))
            for r in records:
                self.offsets[(r.topic, r.partition)] = r.offset
            return BatchResult({"rows": len(records)}, 0, 1)

    def flush(self) -> None:
        self.flushed = True

    def close(self) -> None:
        pass


def values(n: int, prefix: str = "v") -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(n)]


def offsets_of(sink: MemorySink, partition: int = 0) -> list[int]:
    return [r.offset for r in sink.rows if r.partition == partition]


def run(
    consumer: Consumer, sink: MemorySink, clock: Clock, stop: threading.Event, **settings: int
) -> int:
    loop = SinkLoop(consumer, sink, [TOPIC], LoopSettings(**settings), clock=clock)
    return loop.run(stop)


def stop_when(condition: Callable[[], bool], stop: threading.Event) -> Callable[[int], None]:
    def on_turn(turn: int) -> None:
        if condition():
            stop.set()

    return on_turn


def test_full_batches_are_written_at_once_and_the_rest_on_stop() -> None:
    clock, stop, sink = Clock(), threading.Event(), MemorySink()
    consumer = Consumer({(TOPIC, 0): values(7)})
    consumer.on_turn = stop_when(lambda: len(sink.rows) == 6, stop)

    assert run(consumer, sink, clock, stop, batch_size=3, linger_ms=50) == 0

    # Two full batches while the clock stood still; the seventh record at the stop.
    assert sink.batches == [3, 3, 1]
    assert offsets_of(sink) == list(range(7))
    assert [r.value for r in sink.rows] == values(7)
    assert sink.rows[0].timestamp_ms == 1_767_225_600_000
    assert sink.flushed
    assert consumer.closed
    # The informative Kafka commit after each batch: the next offset to read.
    assert consumer.commits == [((TOPIC, 0), 3), ((TOPIC, 0), 6), ((TOPIC, 0), 7)]


def test_a_partial_batch_waits_for_the_linger_on_the_clock() -> None:
    clock, stop, sink = Clock(), threading.Event(), MemorySink()
    consumer = Consumer({(TOPIC, 0): values(2)})
    seen: dict[str, int] = {}

    def on_turn(turn: int) -> None:
        if turn == 20:  # the records arrived at turn 1; the clock has not moved since
            seen["before"] = len(sink.rows)
            clock.advance(0.049)  # 49 ms: not yet
        elif turn == 40:
            seen["almost"] = len(sink.rows)
            clock.advance(0.002)  # 51 ms in all
        elif turn >= 60:
            seen["after"] = len(sink.rows)
            stop.set()

    consumer.on_turn = on_turn
    assert run(consumer, sink, clock, stop, batch_size=100, linger_ms=50) == 0
    assert seen == {"before": 0, "almost": 0, "after": 2}
    assert sink.batches == [2]


def test_each_partition_resumes_after_the_offset_the_store_holds() -> None:
    clock, stop = Clock(), threading.Event()
    sink = MemorySink(offsets={(TOPIC, 0): 4})
    consumer = Consumer({(TOPIC, 0): values(8), (TOPIC, 1): values(2)})
    consumer.on_turn = stop_when(lambda: len(sink.rows) == 5, stop)

    assert run(consumer, sink, clock, stop, batch_size=5) == 0
    assert offsets_of(sink, 0) == [5, 6, 7]  # stored up to 4: the rest only
    assert offsets_of(sink, 1) == [0, 1]  # nothing stored: from the beginning


def test_an_unavailable_store_pauses_and_retries_after_the_backoff() -> None:
    clock, stop, sink = Clock(), threading.Event(), MemorySink()
    sink.unavailable = 2
    consumer = Consumer({(TOPIC, 0): values(3) + values(2, "late")})
    seen: dict[str, object] = {}

    def on_turn(turn: int) -> None:
        if turn == 30:  # the first write failed: paused, waiting for the backoff
            seen["first"] = (sink.attempts, set(consumer.paused), len(sink.rows))
            clock.advance(0.049)  # below the shortest first backoff (half of 100 ms)
        elif turn == 50:
            seen["early"] = sink.attempts
            clock.advance(0.06)  # now past the longest first backoff (100 ms)
        elif turn == 70:
            seen["second"] = (sink.attempts, set(consumer.paused))
            clock.advance(0.25)  # past the longest second backoff (200 ms)
        elif turn >= 90:
            stop.set()

    consumer.on_turn = on_turn
    assert run(consumer, sink, clock, stop, batch_size=3, retry_backoff_ms=100) == 0

    assert seen["first"] == (1, {(TOPIC, 0)}, 0)
    assert seen["early"] == 1  # no retry before the backoff, however many turns
    assert seen["second"] == (2, {(TOPIC, 0)})
    # The third attempt wrote the held batch; the partition resumed and the rest followed.
    assert consumer.paused == set()
    assert offsets_of(sink) == [0, 1, 2, 3, 4]
    assert [r.value for r in sink.rows] == values(3) + values(2, "late")


def test_the_loop_gives_up_after_max_retries() -> None:
    clock, stop, sink = Clock(), threading.Event(), MemorySink()
    sink.unavailable = 1_000
    consumer = Consumer({(TOPIC, 0): values(3)})
    consumer.on_turn = lambda turn: clock.advance(1.0)  # every backoff has passed

    code = run(consumer, sink, clock, stop, batch_size=3, max_retries=2, retry_backoff_ms=10)
    assert code == EXIT_RETRIES_EXHAUSTED
    assert sink.attempts == 3  # the write and two retries
    assert sink.rows == []
    assert consumer.closed


def test_a_stop_while_the_store_is_down_gives_up_at_the_shutdown_timeout() -> None:
    clock, stop, sink = Clock(), threading.Event(), MemorySink()
    consumer = Consumer({(TOPIC, 0): values(2)})

    def on_turn(turn: int) -> None:
        if turn == 5:  # two records held in a batch that lingers
            sink.unavailable = 1_000
            sink.on_write = lambda: clock.advance(1.0)  # each failed attempt takes 1 s
            stop.set()

    consumer.on_turn = on_turn
    code = run(
        consumer, sink, clock, stop, batch_size=100, linger_ms=60_000,
        shutdown_timeout_ms=1_500, retry_backoff_ms=1,
    )  # fmt: skip
    assert code == EXIT_UNFLUSHED
    assert sink.attempts == 2  # at 1 s: before the deadline, retried; at 2 s: past it
    assert sink.rows == []


def test_a_revoked_partition_gets_its_held_records_written_first() -> None:
    clock, stop, sink = Clock(), threading.Event(), MemorySink()
    consumer = Consumer({(TOPIC, 0): values(3), (TOPIC, 1): values(1)})
    seen: dict[str, object] = {}

    def on_turn(turn: int) -> None:
        if turn == 10:  # all four records held, lingering
            seen["held"] = len(sink.rows)
            consumer.revoke([(TOPIC, 0)])
            seen["revoked"] = sorted((r.partition, r.offset) for r in sink.rows)
            stop.set()

    consumer.on_turn = on_turn
    assert run(consumer, sink, clock, stop, batch_size=100, linger_ms=60_000) == 0
    assert seen["held"] == 0
    # Before the partition went, the held batch (both partitions' records) was written.
    assert seen["revoked"] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert sink.batches == [4]

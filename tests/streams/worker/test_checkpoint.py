"""The checkpoint's steps over MemoryStores, with an in-memory Kafka side (no broker): their
order, the state written only after the Kafka commit, and the retry of a batch whose
transaction did not commit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import orjson
import pytest

from streams.engine.engine import MatchingEngine
from streams.settings import TopicNames
from streams.state.changelog import changelog_position
from streams.state.memory import MemoryStore
from streams.worker import metrics
from streams.worker.checkpoint import Checkpoint, ChunkTransactions
from streams.worker.observe import WorkerObserver
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, InputRecord, RawRecord
from streams.worker.sender import DeliveryFailedError
from streams.worker.stop_points import StopPoints

TOPICS = TopicNames()
PARTITIONS = 3
T0 = 1_767_225_600_000


class KafkaSide:
    """What a transactional producer would do, in memory: records of the open transaction
    become visible at commit, and the changelog's next offset per partition is reported."""

    def __init__(self, failures: Sequence[DeliveryFailedError] = ()) -> None:
        self.steps: list[str] = []
        self.committed: list[tuple[str, bytes | None, bytes | None]] = []
        self._open: list[tuple[str, bytes | None, bytes | None]] = []
        self._changelog_ends: dict[int, int] = {}
        self._pending_ends: dict[int, int] = {}
        self._failures = list(failures)

    def begin(self) -> None:
        self.steps.append("begin")
        self._open, self._pending_ends = [], {}

    def changelog(self, partition: int, changes: Sequence[tuple[bytes, bytes | None]]) -> None:
        self.steps.append(f"changelog p{partition}")
        self._open += [("changelog", k, v) for k, v in changes]
        start = self._pending_ends.get(partition, self._changelog_ends.get(partition, 0))
        self._pending_ends[partition] = start + len(changes)

    def send_outputs(self, records: Iterable[tuple[str, bytes | None, bytes, int | None]]) -> None:
        self.steps.append("outputs")
        self._open += [(topic, key, value) for topic, key, value, _ in records]

    def commit(self) -> dict[int, int]:
        self.steps.append("commit")
        if self._failures:
            self._open = []
            raise self._failures.pop(0)
        self.committed += self._open
        self._changelog_ends.update(self._pending_ends)
        return dict(self._pending_ends)

    def abort(self) -> None:
        self.steps.append("abort")

    def recover(self) -> None:
        self.steps.append("recover")

    def renew(self) -> None:
        self.steps.append("renew")


def _pair(reference: str, offset: int) -> list[RawRecord]:
    partition = partition_for(reference.encode(), PARTITIONS)
    event = {"reference": reference, "amount_minor": 100, "currency": "EUR", "event_time": T0}
    pay = {**event, "event_id": f"p-{reference}", "kind": "payment"}
    led = {**event, "event_id": f"l-{reference}", "direction": "credit"}
    # Heartbeats past the allowed lateness: the watermark releases the pair, which matches.
    beat = orjson.dumps({"event_time": T0 + 10 * 60_000})
    return [
        RawRecord(TOPICS.payments, partition, offset, reference.encode(), orjson.dumps(pay)),
        RawRecord(TOPICS.ledger, partition, offset, reference.encode(), orjson.dumps(led)),
        RawRecord(TOPICS.payments, partition, offset + 1, None, beat),
        RawRecord(TOPICS.ledger, partition, offset + 1, None, beat),
    ]


def _checkpoint(
    kafka: KafkaSide, stores: dict[int, MemoryStore], membership: list[object]
) -> tuple[Checkpoint, list[str]]:
    transactions = ChunkTransactions(lambda p: stores.setdefault(p, MemoryStore()), kafka.changelog)
    processor = BatchProcessor(
        MatchingEngine(),
        TOPICS,
        PARTITIONS,
        lambda p: stores.setdefault(p, MemoryStore()),
        begin=transactions.begin,
    )
    restored: list[str] = []

    async def restore(records: Sequence[InputRecord]) -> None:
        restored.append(f"restore {sorted({r.partition for r in records})}")

    checkpoint = Checkpoint(
        kafka,
        transactions,
        processor.start,
        restore=restore,
        membership=lambda: membership[0],
        stopping=asyncio.Event(),
        stops=StopPoints(None),
        observer=WorkerObserver(),
    )
    return checkpoint, restored


def _state(stores: dict[int, MemoryStore]) -> dict[int, list[tuple[bytes, bytes]]]:
    return {p: list(s.scan(b"A", b"\xff")) for p, s in stores.items() if len(s)}


def test_the_steps_run_in_order_and_state_is_written_after_the_commit() -> None:
    kafka = KafkaSide()
    stores: dict[int, MemoryStore] = {}
    checkpoint, restored = _checkpoint(kafka, stores, [(1, "member")])
    records = _pair("ORDER-1", 0)
    partition = records[0].partition

    asyncio.run(checkpoint.process(records))

    assert restored == [f"restore [{partition}]"]
    assert kafka.steps == ["begin", f"changelog p{partition}", "outputs", "commit"]
    # One match out, and the state RocksDB holds is what the changelog got, at its position.
    assert [topic for topic, _, _ in kafka.committed].count(TOPICS.matched) == 1
    changelog = {k: v for topic, k, v in kafka.committed if topic == "changelog"}
    assert dict(_state(stores)[partition]) == {k: v for k, v in changelog.items() if v}
    assert changelog_position(stores[partition]) == len(changelog)


def test_a_batch_whose_transaction_failed_is_retried_whole_and_written_once() -> None:
    kafka = KafkaSide([DeliveryFailedError("broker outage")])
    stores: dict[int, MemoryStore] = {}
    checkpoint, _ = _checkpoint(kafka, stores, [(1, "member")])
    records = _pair("ORDER-2", 0)
    partition = records[0].partition
    retries = metrics.KAFKA_RETRIES._value.get()

    asyncio.run(checkpoint.process(records))

    once = ["begin", f"changelog p{partition}", "outputs", "commit"]
    assert kafka.steps == [*once, "recover", *once]
    assert metrics.KAFKA_RETRIES._value.get() == retries + 1
    assert [topic for topic, _, _ in kafka.committed].count(TOPICS.matched) == 1
    changelog = [k for topic, k, _ in kafka.committed if topic == "changelog"]
    assert changelog_position(stores[partition]) == len(changelog)


def test_a_fenced_producer_is_renewed_before_the_retry() -> None:
    kafka = KafkaSide([DeliveryFailedError("fenced", fatal=True)])
    checkpoint, _ = _checkpoint(kafka, {}, [(1, "member")])
    asyncio.run(checkpoint.process(_pair("ORDER-3", 0)))
    assert kafka.steps.count("renew") == 1
    assert kafka.steps.count("commit") == 2


@pytest.mark.parametrize("membership", [None, "changed"])
def test_no_retry_once_the_partitions_may_belong_to_another_worker(
    membership: str | None,
) -> None:
    """Membership unknown, or changed while the batch was tried: the failure propagates (the
    worker exits without the ack) and nothing reaches the state."""
    kafka = KafkaSide([DeliveryFailedError("broker outage")])
    stores: dict[int, MemoryStore] = {}
    member: list[object] = [None if membership is None else (1, "member")]
    checkpoint, _ = _checkpoint(kafka, stores, member)
    if membership == "changed":
        kafka.commit = _changing(kafka.commit, member)  # type: ignore[method-assign]
    with pytest.raises(DeliveryFailedError):
        asyncio.run(checkpoint.process(_pair("ORDER-4", 0)))
    assert _state(stores) == {}
    assert kafka.steps[-1] == "commit"


def _changing(commit: object, member: list[object]) -> object:
    def wrapped() -> dict[int, int]:
        member[0] = (2, "member")  # a rebalance began during the commit
        assert callable(commit)
        result: dict[int, int] = commit()
        return result

    return wrapped

"""Faust at arm's length: whole partition batches through Faust, and the one module that
reaches into Faust's or aiokafka's private API.

Faust wraps every record in a message and an event, and acks each under a lock; that caps an
agent near 10k records/s on our machine whatever its settings (docs/performance.md). This
transport keeps Faust's consumer (group membership, the assignor, table routing, committed
offsets) and changes what it hands on: each fetched batch of one input topic-partition becomes
one :class:`PartitionBatch` message, which carries aiokafka's records as they came, and whose
offset is its last record's.

Acks and commits stay Faust's: acking a batch marks every offset up to its last acked, from the
partition's committed offset on, so Faust's own bookkeeping commits past the batch only once
the agent has finished it. Table changelog partitions (Faust's own recovery) keep Faust's
one-message-per-record path.

The transport is registered under the ``faust.transports`` entry point as ``recon`` (see
pyproject.toml); the worker's consumer URL uses that scheme, its producer plain ``kafka://``.

Every private Faust or aiokafka API the worker uses is used here only, and listed in
:data:`PRIVATE_API`: the transport's consumer internals, and behind named functions a table
partition's RocksDB (:func:`partition_db`), the committed offsets (:func:`input_lags`), the
group membership (:func:`group_membership`) and the fetcher's record reader
(:func:`replace_fetched_records`). tests/streams/worker/test_faust_batches.py fails with
the API's name when an upgrade removes one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any, ClassVar

from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerMessage, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

SCHEME = "recon"

# Checked against the installed Faust by tests/streams/worker/test_faust_batches.py.
PRIVATE_API = (
    "Consumer._wait_next_records",
    "Consumer._to_message",
    "Consumer._read_offset",
    "Consumer._committed_offset",
    "Consumer._acked",
    "Consumer._acked_index",
    "Consumer._unacked_messages",
    "Consumer._n_acked",
    "Consumer._waiting_for_ack",
    "Consumer._buffered_partitions",
    "Consumer._new_offset",  # how acked offsets become commits (the tests drive it)
    "ack_lock",
    # group_membership(): the aiokafka consumer behind Faust's thread, and its coordinator's
    # (aiokafka's) member id, generation and pending rejoin.
    "ThreadDelegateConsumer._thread",
    "AIOKafkaConsumerThread._consumer",
    "AIOKafkaConsumer._coordinator",
    "GroupCoordinator._rejoin_needed_fut",
    # partition_db(): the RocksDB of a table partition, as Faust's own store opens it.
    "Store._db_for_partition",
    # replace_fetched_records(): the class aiokafka's fetcher reads each fetched message set with.
    "aiokafka.consumer.fetcher.MemoryRecords",
)


class PartitionBatch(ConsumerMessage):
    """One fetched batch of a topic-partition, in offset order: ``offset`` is the last
    record's, ``first`` the first's, ``records`` aiokafka's ``ConsumerRecord`` objects."""

    __slots__ = ("first", "records")

    def __init__(self, tp: TP, records: Sequence[Any], generation_id: int | None) -> None:
        last = records[-1]
        super().__init__(
            tp.topic,
            tp.partition,
            last.offset,
            last.timestamp / 1000.0 if last.timestamp is not None else None,  # type: ignore[arg-type]
            last.timestamp_type,
            None,
            None,
            None,
            None,
            0,
            0,
            tp,
            generation_id=generation_id,
        )
        self.first: int = records[0].offset
        self.records: Sequence[Any] = records


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, yielding one message per fetched topic-partition batch."""

    def on_buffer_full(self, tp: TP) -> None:
        """Keep fetching a partition whose stream buffer is under pressure.

        Faust's answer to a buffer past 80% full is to drop the partition from the fetch, and
        to add it back one partition per ``get`` once the buffer is below 40%. Our buffer holds
        partition batches, and every input partition of the worker feeds the one agent's
        buffer, so a pause in the agent (a commit, a compaction) dropped all of them; with no
        active partition Faust's fetcher sleeps a whole second (``_wait_next_records``). The
        fetches that followed then brought a second of records in a few large batches that
        filled the buffer again: the worker settled into one batch a second, 2-3 s behind,
        at a fraction of its load (docs/performance.md, latency). Not dropping the partition
        leaves the back-pressure to the buffer's own bound: the fetcher waits in ``put`` on a
        full buffer, and aiokafka stops fetching what is not consumed.
        """

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        records, active = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            # As Faust's own getmany: a fetch that raced a flow stop goes back to the
            # committed offsets.
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        generation_id = self.app.consumer_generation_id
        changelogs = self.app.tables.changelog_topics
        read_offset = self._read_offset
        for tp, fetched in records.items():
            batch: Sequence[Any] = fetched
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break  # a rebalance began: what is left is fetched again after it
            if not batch or not (active is None or tp in active or tp in self._buffered_partitions):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in changelogs:
                for record in batch:
                    yield tp, self._to_message(tp, record)
                continue
            # Faust drops records below its read offset (fetched before a seek); so do we.
            floor = read_offset[tp]
            if floor is not None and batch[0].offset < floor:
                batch = [r for r in batch if r.offset >= floor]
                if not batch:
                    continue
            # Faust counts a jump in offsets between two messages as a gap it fills at commit
            # time; a batch acks all its offsets itself, so no gap may be recorded for it.
            read_offset[tp] = batch[-1].offset
            yield tp, PartitionBatch(tp, batch, generation_id)

    def ack(self, message: Message) -> bool:
        if not isinstance(message, PartitionBatch):
            return bool(super().ack(message))
        with ack_lock:
            if message.acked:
                return False
            message.acked = True
            self._unacked_messages.discard(message)
            try:
                if not self.app.topics.acks_enabled_for(message.topic):
                    return False
                tp = message.tp
                # From the committed offset, not the batch's first: the worker applies each
                # input partition in offset order from its state's position, and reads again
                # what the consumer skipped (streams/worker/refetch.py), so once a batch is
                # done every offset below it is too. Faust commits only up to the first
                # offset never acked; acking from the batch's first, a range skipped across a
                # rebalance (no message carries it) stopped the partition's commits for good.
                committed = self._committed_offset[tp]
                start = message.first if committed is None else committed
                offsets = range(start, message.offset + 1)
                if not offsets:
                    return False
                index = self._acked_index[tp]
                if not index.isdisjoint(offsets):  # a redelivery overlapping acked offsets
                    new: Sequence[int] = [o for o in offsets if o not in index]
                else:
                    new = offsets
                index.update(new)
                self._acked[tp].extend(new)
                self._n_acked += len(new)
                return True
            finally:
                notify(self._waiting_for_ack)


class BatchTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`BatchConsumer`."""

    Consumer: ClassVar[type[Any]] = BatchConsumer


def input_lags(
    consumer: Any, topics: Collection[str], processed: Mapping[tuple[str, int], int]
) -> list[tuple[str, int, int]]:
    """Records behind the end of each assigned input partition: its high watermark as the
    last fetch saw it, minus the next offset to process (``processed``: the worker's own
    count since the assignment, else Faust's committed offset). Partitions with no fetch and
    no offset yet are left out."""
    committed = consumer._committed_offset
    out: list[tuple[str, int, int]] = []
    for tp in sorted(consumer.assignment()):
        if tp.topic not in topics:
            continue
        high = consumer.highwater(tp)
        done = max(processed.get((tp.topic, tp.partition), -1), committed.get(tp) or -1)
        if high is None or high < 0 or done < 0:
            continue
        out.append((tp.topic, tp.partition, max(high - done, 0)))
    return out


def group_membership(consumer: Any) -> tuple[int, str] | None:
    """The (generation, member id) under which ``consumer`` (Faust's) holds its assignment, or
    None when it holds none for sure: not joined yet, or its coordinator has asked it to
    rejoin (its membership expired, say during a broker outage, or a rebalance began). While
    this stays the same, no other member of the group can have been given its partitions."""
    thread = getattr(consumer, "_thread", None)
    inner = getattr(thread, "_consumer", None)
    coordinator = getattr(inner, "_coordinator", None)
    if coordinator is None:
        return None
    rejoin = getattr(coordinator, "_rejoin_needed_fut", None)
    member = getattr(coordinator, "member_id", "")
    if rejoin is None or rejoin.done() or not member:
        return None
    return int(coordinator.generation), str(member)


def batch_records(message: Message) -> Sequence[Any]:
    """The records a message carries: a batch's, or the one record of a plain message."""
    if isinstance(message, PartitionBatch):
        return message.records
    return (message,)


def partition_db(table: Any, partition: int) -> Any:
    """The rocksdict ``Rdict`` of one partition of a Faust table on ``rocksdb://``, opened by
    Faust's store if it is not yet (Faust's Store has no public per-partition handle; this is
    the one it uses itself)."""
    return table.data._db_for_partition(partition)


def replace_fetched_records(reader: type) -> None:
    """Make aiokafka's fetcher (every consumer of this process) build each fetched message set
    with ``reader`` instead of its ``MemoryRecords``."""
    if getattr(aiokafka_fetcher, "MemoryRecords", None) is None:
        raise RuntimeError("aiokafka.consumer.fetcher.MemoryRecords is gone: see PRIVATE_API")
    aiokafka_fetcher.MemoryRecords = reader

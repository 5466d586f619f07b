"""How a batch becomes durable: the worker's checkpoint, after quix-streams' ``Checkpoint``.

A batch is one Kafka transaction, or several when it releases a backlog (one per bounded chunk
of :class:`~streams.worker.processor.BatchRun`). Every partition a chunk touches gets its own
:class:`~streams.state.transaction.PartitionTransaction` (:class:`ChunkTransactions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from streams.backoff import backoff_s
from streams.contract.exceptions import SchemaRegistryUnavailableError
from streams.state.base import KeyValueStore
from streams.state.transaction import ChangelogSend, PartitionTransaction
from streams.worker import metrics
from streams.worker.observe import WorkerObserver
from streams.worker.processor import BatchResult, BatchRun, InputRecord
from streams.worker.sender import DeliveryFailedError
from streams.worker.stop_points import StopPoints

log = logging.getLogger(__name__)


class ChunkSender(Protocol):
    """The Kafka side of a checkpoint (:class:`~streams.worker.sender.TransactionalSender`)."""

    def begin(self) -> None: ...
    def changelog(self, partition: int, changes: Sequence[tuple[bytes, bytes | None]]) -> None: ...
    def send_outputs(
        self, records: Iterable[tuple[str, bytes | None, bytes, int | None]]
    ) -> None: ...
    def commit(self) -> dict[int, int]: ...
    def abort(self) -> None: ...
    def recover(self) -> None: ...
    def renew(self) -> None: ...


class ChunkTransactions:
    """The partition transactions of the chunk in flight: begun by the processor, committed
    (or failed) together by the checkpoint."""

    def __init__(
        self, local_store: Callable[[int], KeyValueStore], changelog: ChangelogSend
    ) -> None:
        self._local_store = local_store
        self._changelog = changelog
        self._open: dict[int, PartitionTransaction] = {}

    def begin(self, partition: int) -> PartitionTransaction:
        tx = self._open[partition] = PartitionTransaction(
            self._local_store(partition), partition, self._changelog
        )
        return tx

    def commit(self, positions: Mapping[int, int]) -> None:
        """Each partition's changes and its new changelog position, one write per partition."""
        for partition, tx in self._open.items():
            tx.commit(positions.get(partition))
        self._open.clear()

    def fail(self) -> None:
        """The chunk's Kafka transaction aborted: none of its changes reach RocksDB."""
        for tx in self._open.values():
            tx.fail()
        self._open.clear()


class Checkpoint:
    """A batch's steps, in order, for each of its chunks:

    1. **begin**: open the Kafka transaction (each partition the chunk touches then begins its
       partition transaction);
    2. **process**: the engine runs the chunk, and each partition transaction is prepared: its
       state changes go to the state changelog, inside the Kafka transaction;
    3. **send**: the chunk's outputs (matches, exceptions, dead letters) join the transaction;
    4. **commit**: the Kafka transaction commits, changelog and outputs together, and reports
       where each changelog partition now ends;
    5. **apply**: each partition transaction commits to RocksDB, its changes and its changelog
       position in one ``WriteBatch``;
    6. **ack**: after the last chunk the batch may be acked, and Faust commits its input offsets.

    Before the first chunk, ``restore`` readies the producer and brings the batch's partitions
    up to the end of their changelog. A batch is
    retried whole while the schema registry does not answer, or while its Kafka transaction
    cannot commit and the consumer's group membership is unchanged: an outage pauses the
    worker instead of dead-lettering records that may be fine, or exiting. Nothing of a failed
    attempt is visible: its Kafka transaction is aborted and its partition transactions fail.
    The chunks of a released backlog committed before it stay; the retry finds them applied,
    as a restart would. The stop points (``stops``) let the fault tests kill the worker
    between the steps.
    """

    def __init__(
        self,
        sender: ChunkSender,
        transactions: ChunkTransactions,
        start: Callable[[Sequence[InputRecord]], BatchRun],
        *,
        restore: Callable[[Sequence[InputRecord]], Awaitable[None]],
        membership: Callable[[], object],
        stopping: asyncio.Event,
        stops: StopPoints,
        observer: WorkerObserver,
    ) -> None:
        self._sender = sender
        self._transactions = transactions
        self._start = start
        self._restore = restore
        self._membership = membership
        self._stopping = stopping
        self._stops = stops
        self._observer = observer

    async def process(self, records: Sequence[InputRecord]) -> None:
        """Every step of the batch, retried whole as the class says; raises when the batch
        cannot be made durable (the worker then exits without the ack)."""
        await self._stops.reached("after_fetch")
        loop = asyncio.get_running_loop()
        sender = self._sender
        attempt, repair = 0, None
        member = self._membership()
        while True:
            try:
                if repair is not None:
                    await loop.run_in_executor(None, repair)
                    repair = None
                await self._once(records)
                return
            except SchemaRegistryUnavailableError as exc:
                if self._stopping.is_set():
                    raise  # a stop cannot wait for the registry: exit without the ack
                self._transactions.fail()
                await loop.run_in_executor(None, sender.abort)
                metrics.REGISTRY_RETRIES.inc()
                attempt += 1
                delay = backoff_s(attempt, 500, 30_000, jitter=False)
                log.warning("%s; retrying the batch in %.1fs", exc, delay)
            except DeliveryFailedError as exc:
                # Once the group may have given our partitions to another worker, exit
                # without the ack (like a kill -9) rather than write them: membership lost
                # or a rebalance begun. Until then nobody else writes them, and the batch is
                # retried; a producer the broker fenced (its transaction outlived its
                # timeout) is replaced, as a restart would.
                if self._stopping.is_set() or member is None or self._membership() != member:
                    raise
                self._transactions.fail()
                repair = sender.renew if exc.fatal else sender.recover
                metrics.KAFKA_RETRIES.inc()
                attempt += 1
                delay = backoff_s(attempt, 500, 30_000, jitter=False)
                log.warning("batch not committed, retrying it in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)

    async def _once(self, records: Sequence[InputRecord]) -> None:
        loop = asyncio.get_running_loop()
        sender, stops = self._sender, self._stops
        await self._restore(records)
        run = self._start(records)
        while not run.done:
            self._transactions.fail()  # none is left open; a chunk starts from the store
            sender.begin()  # 1
            result = run.next_chunk()  # 2
            await stops.reached("after_engine")
            self._send(result)  # 3
            await stops.reached("after_send")
            began = time.perf_counter()
            positions = await loop.run_in_executor(None, sender.commit)  # 4
            committed = time.perf_counter()
            metrics.COMMIT_SECONDS.observe(committed - began)
            await stops.reached("after_commit")
            self._transactions.commit(positions)  # 5
            metrics.APPLY_SECONDS.observe(time.perf_counter() - committed)
            self._observer.count(result)
        await stops.reached("before_ack")  # 6: the caller acks

    def _send(self, result: BatchResult) -> None:
        self._sender.send_outputs((r.topic, r.key, r.value, r.partition) for r in result.outgoing)

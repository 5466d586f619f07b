"""librdkafka producers for what the worker writes.

:class:`TransactionalSender` writes a batch's changelog records and outputs in one Kafka
transaction: a batch's state changes and its matches, exceptions and dead letters become visible
to ``read_committed`` readers (the sink, the restore) together or not at all. Faust's own
producer path costs about 1 ms per table write; here records are queued in librdkafka
(microseconds each) and the transaction commits once per batch, before Faust acks the batch's
input records (docs/delivery.md).

:class:`BatchSender` is the plain idempotent producer, for heartbeats.
"""

from __future__ import annotations

import contextlib
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.settings import KafkaSettings
from streams.worker.exceptions import WorkerError


class DeliveryFailedError(WorkerError):
    """The broker did not take a batch's records: the batch must not be acked."""


class BatchSender:
    def __init__(self, kafka: KafkaSettings, extra: dict[str, Any] | None = None) -> None:
        self._producer = Producer(
            {
                **kafka.confluent_config(),
                # Same key partitioning as Faust (aiokafka) and as upstream must use.
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
                **(extra or {}),
            }
        )
        self._errors: list[KafkaError] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(err)

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        while True:
            try:
                if partition is None:
                    self._producer.produce(
                        topic, value=value, key=key, on_delivery=self._on_delivery
                    )
                else:
                    self._producer.produce(
                        topic,
                        value=value,
                        key=key,
                        partition=partition,
                        on_delivery=self._on_delivery,
                    )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain

    def flush(self, timeout: float = 60) -> None:
        """Wait until every queued record is acknowledged."""
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if remaining or errors:
            raise DeliveryFailedError(f"{remaining} records unacknowledged, errors: {errors[:3]}")


class TransactionalSender(BatchSender):
    """One transaction per batch; reports where each changelog partition's records ended."""

    def __init__(
        self,
        kafka: KafkaSettings,
        changelog_topic: str,
        transactional_id: str,
        transaction_timeout_ms: int,
    ) -> None:
        super().__init__(
            kafka,
            {
                "transactional.id": transactional_id,
                # How long a batch of a worker that died mid-commit holds back read_committed
                # readers when no worker with the same transactional id comes back to abort it.
                "transaction.timeout.ms": transaction_timeout_ms,
            },
        )
        self._changelog = changelog_topic
        self._changelog_last: dict[int, int] = {}
        self._open = False  # a transaction is open

    def init(self, timeout: float = 60) -> None:
        """Register the transactional id: aborts what a previous run with it left open."""
        self._producer.init_transactions(timeout)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        super()._on_delivery(err, msg)
        if err is None and msg.topic() == self._changelog:
            partition, offset = msg.partition(), msg.offset()
            if (
                partition is not None
                and offset is not None
                and offset > self._changelog_last.get(partition, -1)
            ):
                self._changelog_last[partition] = offset

    def begin(self) -> None:
        self._producer.begin_transaction()
        self._changelog_last = {}
        self._open = True

    def changelog(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.send(self._changelog, key, value, partition)

    def commit(self, timeout: float = 60) -> dict[int, int]:
        """Commit the open transaction; return the changelog position after it per partition
        (the offset after this batch's last record there).

        Raises DeliveryFailedError when the transaction did not commit. It is then aborted if
        the producer can still abort; either way the batch must not be acked."""
        self._open = False
        try:
            self.flush(timeout)  # serves the delivery reports: their offsets are the positions
            while True:
                try:
                    self._producer.commit_transaction(timeout)
                    break
                except KafkaException as exc:
                    if not exc.args[0].retriable():
                        raise
        except (KafkaException, DeliveryFailedError) as exc:
            self._abort_after(exc)
            raise DeliveryFailedError(f"transaction not committed: {exc}") from exc
        return {p: offset + 1 for p, offset in self._changelog_last.items()}

    def abort(self, timeout: float = 30) -> None:
        """Abort the open transaction, if any: none of its records become visible."""
        if self._open:
            self._open = False
            self._producer.abort_transaction(timeout)
        self._changelog_last = {}

    def _abort_after(self, exc: Exception) -> None:
        error = exc.args[0] if isinstance(exc, KafkaException) else None
        if error is not None and error.fatal():
            return  # the producer is unusable; the broker aborts on timeout or the next init
        with contextlib.suppress(KafkaException):  # already failing: the commit error wins
            self._producer.abort_transaction(30)

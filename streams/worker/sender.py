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
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.settings import KafkaSettings
from streams.worker.exceptions import WorkerError

log = logging.getLogger(__name__)


class DeliveryFailedError(WorkerError):
    """The broker did not take a batch's records: the batch must not be acked.

    ``fatal``: the producer is unusable (fenced by a newer one with its transactional id, or
    broken); otherwise the batch may be tried again once :meth:`TransactionalSender.recover`
    has aborted what is left of it (a broker outage outlasting the transaction timeout)."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


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

    def send_batch(
        self, topic: str, messages: list[dict[str, Any]], partition: int | None = None
    ) -> None:
        """Queue many records of one topic in one call (``produce_batch``): dicts with ``key``,
        ``value`` and optionally ``partition`` and ``callback``; ``partition`` None: by key."""
        producer = self._producer
        while messages:
            if partition is None:
                queued = producer.produce_batch(topic, messages)
            else:
                queued = producer.produce_batch(topic, messages, partition=partition)
            if queued == len(messages):
                return
            # Those not queued carry their error; a full local queue is retried once
            # deliveries drained it, anything else fails the batch.
            failed = [m for m in messages if "_error" in m]
            for m in failed:
                error = m.pop("_error")
                code = error.code() if isinstance(error, KafkaError) else None
                if code != KafkaError._QUEUE_FULL:
                    raise DeliveryFailedError(f"{topic}: record not queued: {error}")
            messages = failed
            producer.poll(0.05)

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
        self._settings = (kafka, transactional_id, transaction_timeout_ms)

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

    def changelog(self, partition: int, changes: Sequence[tuple[bytes, bytes | None]]) -> None:
        """A partition's state changes, in one call. Only the last record reports its delivery:
        its offset is the partition's changelog position. A record that fails makes the
        transaction's commit fail, so the others need no report."""
        if not changes:
            return
        messages: list[dict[str, Any]] = [{"key": k, "value": v} for k, v in changes]
        messages[-1]["callback"] = self._on_delivery
        self.send_batch(self._changelog, messages, partition)

    def send_outputs(self, records: Iterable[tuple[str, bytes | None, bytes, int | None]]) -> None:
        """Outputs of a batch, a ``produce_batch`` per topic, in their order within a topic;
        ``(topic, key, value, partition)``, partition None: by key. Within a transaction a
        failed record fails the commit, so none reports its delivery."""
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for topic, key, value, partition in records:
            message: dict[str, Any] = {"key": key, "value": value}
            if partition is not None:
                message["partition"] = partition
            messages = by_topic.get(topic)
            if messages is None:
                by_topic[topic] = [message]
            else:
                messages.append(message)
        for topic, messages in by_topic.items():
            self.send_batch(topic, messages)

    def commit(self, timeout: float = 60) -> dict[int, int]:
        """Commit the open transaction; return the changelog position after it per partition
        (the offset after this batch's last record there).

        Raises DeliveryFailedError when the transaction did not commit. It is then aborted if
        the producer can still abort; either way the batch must not be acked."""
        self._open = False
        try:
            self.flush(timeout)  # serves the delivery reports: their offsets are the positions
            deadline = time.monotonic() + 3 * timeout
            while True:
                try:
                    self._producer.commit_transaction(timeout)
                    break
                except KafkaException as exc:
                    if not exc.args[0].retriable():
                        raise
                    log.warning("the transaction's commit is not confirmed yet: %s", exc.args[0])
                    if time.monotonic() > deadline:
                        # Neither committed nor aborted for sure: only a new registration of
                        # the transactional id settles it (renew()), as a restart would.
                        raise DeliveryFailedError(
                            f"transaction commit unconfirmed after {3 * timeout:.0f}s: {exc}",
                            fatal=True,
                        ) from exc
        except DeliveryFailedError as exc:
            if exc.fatal:
                raise
            self._abort_after(exc)
            raise DeliveryFailedError(f"transaction not committed: {exc}") from exc
        except KafkaException as exc:
            self._abort_after(exc)
            fatal = bool(exc.args[0].fatal())
            raise DeliveryFailedError(f"transaction not committed: {exc}", fatal=fatal) from exc
        return {p: offset + 1 for p, offset in self._changelog_last.items()}

    def renew(self, timeout: float = 10) -> None:
        """A new producer under the same transactional id, registered: after the broker
        aborted a transaction that outlived its timeout (an outage), it fenced this producer's
        epoch, which only a new registration clears, as a restart of the worker would."""
        kafka, transactional_id, timeout_ms = self._settings
        fresh = TransactionalSender(kafka, self._changelog, transactional_id, timeout_ms)
        fresh.init(timeout)
        old, self._producer = self._producer, fresh._producer
        self._open, self._errors, self._changelog_last = False, [], {}
        with contextlib.suppress(Exception):
            old.purge()

    def recover(self, timeout: float = 10) -> None:
        """After a failed commit: abort whatever of the transaction is still open, and drop the
        reports of its purged records, so that the next :meth:`begin` starts clean. Raises
        DeliveryFailedError while the broker cannot take the abort (``fatal`` when the
        producer is unusable: then the process must exit)."""
        self._open = False
        try:
            self._producer.abort_transaction(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError._STATE:  # _STATE: no transaction was open
                raise DeliveryFailedError(f"abort failed: {error}", fatal=error.fatal()) from exc
        self._producer.poll(0)  # serves the purged records' reports
        self._errors = []
        self._changelog_last = {}

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

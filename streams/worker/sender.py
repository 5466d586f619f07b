"""One librdkafka producer for everything the worker writes: changelog records and outputs.

Faust sends each table change through its Python producer buffer and writes the changelog's
persisted offset to RocksDB on every acknowledgement: about 1 ms per event for the ~8 state keys
an event touches. Here records are queued in librdkafka (microseconds each) and the whole batch
is flushed once, before Faust acks the batch's input records, so nothing is committed in Kafka
before its state and outputs are durable (at-least-once, see docs/delivery.md).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.settings import KafkaSettings
from streams.worker.exceptions import WorkerError


class DeliveryFailedError(WorkerError):
    """The broker did not acknowledge records of a batch: the batch must not be acked."""


class BatchSender:
    def __init__(
        self, kafka: KafkaSettings, changelog_topic: str, extra: dict[str, Any] | None = None
    ) -> None:
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
        self._changelog = changelog_topic
        self._errors: list[KafkaError] = []
        self._changelog_offsets: dict[int, int] = {}

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(err)
        elif msg.topic() == self._changelog:
            partition, offset = msg.partition(), msg.offset()
            if (
                partition is not None
                and offset is not None
                and offset > self._changelog_offsets.get(partition, -1)
            ):
                self._changelog_offsets[partition] = offset

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

    def changelog(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.send(self._changelog, key, value, partition)

    def flush(self, timeout: float = 60) -> dict[int, int]:
        """Wait until every queued record is acknowledged; return the last changelog offset
        acknowledged per partition since the previous flush."""
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        offsets, self._changelog_offsets = self._changelog_offsets, {}
        if remaining or errors:
            raise DeliveryFailedError(f"{remaining} records unacknowledged, errors: {errors[:3]}")
        return offsets

"""Reading input records again that Faust's consumer skipped.

Across a rebalance, Faust's consumer can move its read position past records it fetched but
never delivered (it clears its queues, and records of the previous fetch set the read offset
ahead of the seek to the committed offset), and then commits past them as a "gap". The worker
notices from its state (:meth:`streams.worker.processor.BatchProcessor.without_gaps`) and reads
the range again here, with its own librdkafka consumer, outside any group.
"""

from __future__ import annotations

import time

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, TopicPartition

from streams.settings import KafkaSettings
from streams.worker.exceptions import WorkerError
from streams.worker.processor import RawRecord


class RefetchError(WorkerError):
    """A range of an input partition could not be read again."""


class RecordReader:
    def __init__(self, kafka: KafkaSettings, group_id: str) -> None:
        self._consumer = Consumer(
            {
                **kafka.confluent_config(),
                "group.id": group_id,  # required by librdkafka; never joined (assign only)
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                # As Faust's consumer reads the inputs (at_least_once): the same records.
                "isolation.level": "read_uncommitted",
            }
        )

    def read(
        self, topic: str, partition: int, start: int, end: int, limit: int, timeout: float = 60.0
    ) -> list[RawRecord]:
        """The first ``limit`` records at offsets ``start <= offset < end`` (fewer when some
        no longer exist: deleted by retention, or transaction markers)."""
        records: list[RawRecord] = []
        self._consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for msg in self._consumer.consume(1000, 0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            return records
                        raise RefetchError(f"{topic}[{partition}] {start}..{end}: {err}")
                    offset = msg.offset()
                    if offset is None or offset >= end or len(records) >= limit:
                        return records
                    kind, stamp = msg.timestamp()
                    records.append(
                        RawRecord(
                            topic,
                            partition,
                            offset,
                            msg.key(),
                            msg.value(),
                            None if kind == TIMESTAMP_NOT_AVAILABLE else stamp,
                        )
                    )
        finally:
            self._consumer.unassign()
        raise RefetchError(f"{topic}[{partition}] {start}..{end}: not read within {timeout}s")

    def close(self) -> None:
        self._consumer.close()

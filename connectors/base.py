"""The backend interface of a sink, kept small (in the spirit of quix-streams' ``BaseSink``).

The consuming loop (:mod:`connectors.loop`) owns Kafka; a backend owns its store and the
exactly-once boundary: ``write_batch`` stores the rows *and* the consumed offsets in one
transaction, and ``stored_offsets`` tells the loop where to resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: (topic, partition)
TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One Kafka message as the sink sees it: raw bytes plus its position."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one committed batch wrote, per target table, and how many dead letters it raised."""

    written: Mapping[str, int]
    dead_letters: int
    transactions: int


class Sink(ABC):
    """A transactional backend: every ``write_batch`` is all-or-nothing, offsets included."""

    @abstractmethod
    def open(self) -> None:
        """Prepare the store (migrations, connections). Raises ``SinkUnavailableError`` to retry."""

    @abstractmethod
    def stored_offsets(
        self, partitions: Iterable[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, int]:
        """The last offset committed in the store for each partition that has one."""

    def prepare(self, records: Sequence[SinkRecord]) -> object:
        """The batch's work that needs no store (decoding, building rows). The loop runs it
        while the previous batch is being written, and passes the result to ``write_batch``."""
        return None

    @abstractmethod
    def write_batch(self, records: Sequence[SinkRecord], prepared: object = None) -> BatchResult:
        """Write the records and their offsets atomically (``prepared``: what ``prepare`` gave
        for exactly these records, or None). May run on another thread than the other calls.

        Raises ``SinkUnavailableError`` when nothing was written and the batch must be retried.
        Records that cannot be decoded or stored never raise: they become dead letters.
        """

    def flush(self) -> None:  # noqa: B027 - optional hook, transactional backends have nothing to do
        """Push anything buffered by the backend itself (``write_batch`` already commits)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

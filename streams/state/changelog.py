"""A partition's state changes for one batch: sent in the batch's transaction, applied after it.

The engine's writes reach a :class:`StagedStore` through a write-batching overlay, once per key
and batch. The store sends each change to the state changelog (inside the batch's Kafka
transaction, with the outputs) and holds it back from RocksDB until :meth:`StagedStore.apply`,
which the worker calls only after the transaction committed. So RocksDB never holds a change the
changelog lost with an aborted transaction, and the changelog never holds part of a batch.

RocksDB also keeps where its partition stands in the changelog (:data:`POSITION_KEY`), written in
the same ``WriteBatch`` as the changes, so a restore knows exactly where to resume
(:mod:`streams.state.recovery`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from streams.state.base import KeyValueStore
from streams.state.exceptions import StagedWriteError

# Not an engine key (those start with an ASCII capital) and never sent to the changelog.
POSITION_KEY = b"\x00recon:changelog-position"

# (partition, changes: key and value or None for a tombstone), one call per flush
ChangelogSend = Callable[[int, Sequence[tuple[bytes, bytes | None]]], None]


def changelog_position(store: KeyValueStore) -> int | None:
    """The changelog offset this partition's local state has read up to (exclusive)."""
    raw = store.get(POSITION_KEY)
    return int(raw) if raw is not None else None


def position_change(offset: int) -> tuple[bytes, bytes]:
    return POSITION_KEY, str(offset).encode()


class StagedStore(KeyValueStore):
    __slots__ = ("_local", "_partition", "_send", "_staged")

    def __init__(self, local: KeyValueStore, partition: int, send: ChangelogSend) -> None:
        self._local = local
        self._partition = partition
        self._send = send
        self._staged: list[tuple[bytes, bytes | None]] = []

    @property
    def partition(self) -> int:
        return self._partition

    @property
    def staged(self) -> int:
        return len(self._staged)

    def _check_readable(self) -> None:
        if self._staged:
            raise StagedWriteError(
                f"partition {self._partition}: read after writes were staged; "
                "write through a BatchingStore and flush once per batch"
            )

    def get(self, key: bytes) -> bytes | None:
        self._check_readable()
        return self._local.get(key)

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._check_readable()
        return self._local.scan(start, end)

    def first(self, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
        self._check_readable()
        return self._local.first(start, end)

    def put(self, key: bytes, value: bytes) -> None:
        self.write_many(((key, value),))

    def delete(self, key: bytes) -> None:
        self.write_many(((key, None),))

    def write_many(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        batch = changes if isinstance(changes, list) else list(changes)
        self._send(self._partition, batch)
        self._staged += batch

    def apply(self, position: int | None) -> None:
        """After the commit: the staged changes and the new changelog position, one WriteBatch.

        ``position`` is None when nothing reached the changelog (no staged changes)."""
        changes = self._staged
        self._staged = []
        if position is not None:
            changes.append(position_change(position))
        if changes:
            self._local.write_many(changes)

"""A store whose writes also go to a changelog partition, named explicitly.

Faust's own ``table[key] = value`` picks the changelog partition from the ambient current event
and sends one changelog record per set. Here the partition is an argument and the engine's
writes arrive through a :class:`~streams.state.batching.BatchingStore`, so each key touched by a
batch is written to RocksDB (one ``WriteBatch``) and to the changelog once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from streams.state.base import KeyValueStore

# (partition, key, value or None for a tombstone)
ChangelogSend = Callable[[int, bytes, bytes | None], None]


class ChangeloggedStore(KeyValueStore):
    __slots__ = ("_local", "_partition", "_send")

    def __init__(self, local: KeyValueStore, partition: int, send: ChangelogSend) -> None:
        self._local = local
        self._partition = partition
        self._send = send

    def get(self, key: bytes) -> bytes | None:
        return self._local.get(key)

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self._local.scan(start, end)

    def put(self, key: bytes, value: bytes) -> None:
        self._local.put(key, value)
        self._send(self._partition, key, value)

    def delete(self, key: bytes) -> None:
        self._local.delete(key)
        self._send(self._partition, key, None)

    def write_many(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        changes = list(changes)
        self._local.write_many(changes)
        send, partition = self._send, self._partition
        for key, value in changes:
            send(partition, key, value)

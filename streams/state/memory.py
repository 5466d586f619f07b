"""In-memory store: a dict for point reads plus :class:`SortedKeys` for ordered scans."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from streams.state.base import KeyValueStore
from streams.state.sorted_keys import SortedKeys


class MemoryStore(KeyValueStore):
    __slots__ = ("_bookkeeping", "_data", "_keys")

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys = SortedKeys()
        self._bookkeeping: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            self._keys.add(key)
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            self._keys.remove(key)

    def write_many(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        # put/delete inlined: a batching overlay flushes thousands of keys at a time.
        data, keys = self._data, self._keys
        for key, value in changes:
            if value is None:
                if data.pop(key, None) is not None:
                    keys.remove(key)
            else:
                if key not in data:
                    keys.add(key)
                data[key] = value

    def get_bookkeeping(self, key: bytes) -> bytes | None:
        return self._bookkeeping.get(key)

    def write_with_bookkeeping(
        self,
        changes: Iterable[tuple[bytes, bytes | None]],
        bookkeeping: Sequence[tuple[bytes, bytes]],
    ) -> None:
        self.write_many(changes)
        self._bookkeeping.update(bookkeeping)

    def first(self, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
        key = self._keys.first(start, end)
        return None if key is None else (key, self._data[key])

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        data = self._data
        for key in self._keys.irange(start, end):
            value = data.get(key)
            if value is not None:  # deleted since the chunk was copied
                yield key, value

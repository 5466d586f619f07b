"""The small key-value interface the matching engine keeps its state in.

Keys and values are raw bytes. ``scan`` yields in bytewise key order, ``end`` exclusive, which
is what lets the engine keep ordered indexes (event-time buffer, deadlines, retention) and read
only the part that is due. Mutating the store while a ``scan`` iterator is open is allowed: the
iterator may or may not see the change, but it never fails or yields a key twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence

from streams.state.exceptions import StateError


class KeyValueStore(ABC):
    """Bytes to bytes, ordered by key."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None: ...

    @abstractmethod
    def put(self, key: bytes, value: bytes) -> None: ...

    def insert(self, key: bytes, value: bytes) -> None:
        """``put`` of a key the caller knows the store does not hold (a unique new index
        entry): a write-batching store need not write a delete for it if it goes again."""
        self.put(key, value)

    @abstractmethod
    def delete(self, key: bytes) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abstractmethod
    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for ``start <= key < end`` in key order."""

    def write_many(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply puts (value) and deletes (``None``) together; backends may make this atomic."""
        for key, value in changes:
            if value is None:
                self.delete(key)
            else:
                self.put(key, value)

    def first(self, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
        """The first entry of ``[start, end)``, or ``None``."""
        return next(self.scan(start, end), None)

    # Bookkeeping (where the state stands in its changelog) lives apart from the engine's keys:
    # never scanned with them, never sent to the changelog. A store that keeps it overrides both.

    def get_bookkeeping(self, key: bytes) -> bytes | None:
        raise StateError(f"{type(self).__name__} keeps no bookkeeping")

    def write_with_bookkeeping(
        self,
        changes: Iterable[tuple[bytes, bytes | None]],
        bookkeeping: Sequence[tuple[bytes, bytes]],
    ) -> None:
        """``write_many`` of ``changes`` and the bookkeeping entries, in one atomic write."""
        raise StateError(f"{type(self).__name__} keeps no bookkeeping")


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (for ``scan``)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        # All 0xff (or empty): no finite bound exists, so use one longer than any real key.
        return b"\xff" * (len(prefix) + 64)
    return stripped[:-1] + bytes([stripped[-1] + 1])

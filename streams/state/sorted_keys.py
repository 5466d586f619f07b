"""An ordered set of byte keys: a list of sorted chunks (the idea behind sortedcontainers).

A plain sorted list costs O(n) per insert; with chunks of a few hundred keys, inserts and deletes
move a small chunk only, and range reads bisect the chunk maxima first.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator

_CHUNK = 512


class SortedKeys:
    __slots__ = ("_chunks", "_maxes")

    def __init__(self) -> None:
        self._chunks: list[list[bytes]] = []
        self._maxes: list[bytes] = []

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self._chunks)

    def add(self, key: bytes) -> None:
        """Insert ``key``, which must not be present."""
        maxes = self._maxes
        if not maxes:
            self._chunks.append([key])
            maxes.append(key)
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
            chunk = self._chunks[i]
            chunk.append(key)
            maxes[i] = key
        else:
            chunk = self._chunks[i]
            insort(chunk, key)
        if len(chunk) > 2 * _CHUNK:
            self._chunks[i : i + 1] = [chunk[:_CHUNK], chunk[_CHUNK:]]
            maxes[i : i + 1] = [chunk[_CHUNK - 1], chunk[-1]]

    def remove(self, key: bytes) -> None:
        """Remove ``key``, which must be present."""
        i = bisect_left(self._maxes, key)
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        del chunk[j]
        if not chunk:
            del self._chunks[i]
            del self._maxes[i]
        elif j == len(chunk):
            self._maxes[i] = chunk[-1]

    def first(self, start: bytes, end: bytes) -> bytes | None:
        """The smallest key in ``[start, end)``, or ``None``."""
        maxes = self._maxes
        i = bisect_left(maxes, start)
        if i == len(maxes):
            return None
        chunk = self._chunks[i]
        key = chunk[bisect_left(chunk, start)]  # exists: the chunk's maximum is >= start
        return key if key < end else None

    def irange(self, start: bytes, end: bytes) -> Iterator[bytes]:
        """Keys in ``[start, end)``; each chunk is copied before yielding, and the next chunk is
        found again by key, so the caller may mutate the set between items."""
        lower = start
        inclusive = True
        while True:
            maxes = self._maxes
            i = bisect_left(maxes, lower) if inclusive else bisect_right(maxes, lower)
            if i == len(maxes):
                return
            chunk = self._chunks[i]
            j = bisect_left(chunk, lower) if inclusive else bisect_right(chunk, lower)
            k = bisect_left(chunk, end)
            part = chunk[j:k]
            yield from part
            if k < len(chunk) or not part:
                return
            lower, inclusive = part[-1], False

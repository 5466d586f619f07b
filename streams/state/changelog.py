"""Where a partition's local state stands in its state changelog.

The store keeps, in its bookkeeping (a column family of its own in RocksDB, apart from the
engine's keys), the changelog offset its state has read up to, written in the same atomic
write as the changes it covers (by
:meth:`streams.state.transaction.PartitionTransaction.commit`, and by the restore), so a restore
knows exactly where to resume (:mod:`streams.state.recovery`).

Data directories written before the bookkeeping had its column family hold the position as
:data:`LEGACY_POSITION_KEY` among the engine's keys; :func:`adopt_legacy_position` moves it, in
one atomic write, before the restore reads it. So an upgraded worker resumes where it stood.
"""

from __future__ import annotations

from streams.state.base import KeyValueStore

POSITION = b"changelog-position"
# Where the position was kept before, in the engine's key space (engine keys start with an
# ASCII capital, so it sorted before them).
LEGACY_POSITION_KEY = b"\x00recon:changelog-position"


def changelog_position(store: KeyValueStore) -> int | None:
    """The changelog offset this partition's local state has read up to (exclusive)."""
    raw = store.get_bookkeeping(POSITION)
    return int(raw) if raw is not None else None


def position_entry(offset: int) -> tuple[bytes, bytes]:
    """The bookkeeping entry of a new changelog position."""
    return POSITION, str(offset).encode()


def adopt_legacy_position(store: KeyValueStore) -> bool:
    """Move a position kept among the engine's keys into the bookkeeping; whether there was one.

    The legacy key is the newer one if both exist: only a worker from before the move writes it."""
    raw = store.get(LEGACY_POSITION_KEY)
    if raw is None:
        return False
    store.write_with_bookkeeping([(LEGACY_POSITION_KEY, None)], [(POSITION, raw)])
    return True

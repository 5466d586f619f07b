"""Where a partition's local state stands in its state changelog.

RocksDB keeps, beside a partition's state, the changelog offset it has read up to
(:data:`POSITION_KEY`), written in the same ``WriteBatch`` as the changes it covers (by
:meth:`streams.state.transaction.PartitionTransaction.commit`, and by the restore), so a restore
knows exactly where to resume (:mod:`streams.state.recovery`).
"""

from __future__ import annotations

from streams.state.base import KeyValueStore

# Not an engine key (those start with an ASCII capital) and never sent to the changelog.
POSITION_KEY = b"\x00recon:changelog-position"


def changelog_position(store: KeyValueStore) -> int | None:
    """The changelog offset this partition's local state has read up to (exclusive)."""
    raw = store.get(POSITION_KEY)
    return int(raw) if raw is not None else None


def position_change(offset: int) -> tuple[bytes, bytes]:
    return POSITION_KEY, str(offset).encode()

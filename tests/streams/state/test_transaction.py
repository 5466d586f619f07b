"""The partition transaction over a MemoryStore: its status machine, and changes that go to the
changelog at prepare and to the store only at commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from streams.state.changelog import changelog_position, position_entry
from streams.state.exceptions import StateError, TransactionStateError
from streams.state.memory import MemoryStore
from streams.state.transaction import PartitionTransaction

Sent = list[tuple[int, bytes, bytes | None]]


def make(partition: int = 4) -> tuple[PartitionTransaction, MemoryStore, Sent]:
    local = MemoryStore()
    sent: Sent = []

    def send(p: int, changes: Sequence[tuple[bytes, bytes | None]]) -> None:
        sent.extend((p, key, value) for key, value in changes)

    return PartitionTransaction(local, partition, send), local, sent


def test_changes_go_to_the_changelog_at_prepare_and_to_the_store_at_commit() -> None:
    tx, local, sent = make(4)
    local.put(b"gone", b"x")
    tx.put(b"a", b"1")
    tx.delete(b"gone")
    assert tx.status == "started"
    assert sent == []  # nothing leaves before prepare

    assert tx.prepare() == 2
    assert tx.status == "prepared"
    assert sent == [(4, b"a", b"1"), (4, b"gone", None)]
    assert local.get(b"a") is None  # not before the Kafka transaction committed
    assert local.get(b"gone") == b"x"

    assert tx.commit(position=17) == 2
    assert tx.status == "committed"
    assert local.get(b"a") == b"1"
    assert local.get(b"gone") is None
    assert changelog_position(local) == 17


def test_each_touched_key_is_sent_once_and_born_and_gone_keys_not_at_all() -> None:
    tx, local, sent = make(3)
    local.put(b"gone", b"x")
    tx.put(b"k", b"1")
    tx.put(b"k", b"2")
    tx.delete(b"gone")
    tx.insert(b"tmp", b"t")  # known absent, then deleted: nothing to write
    tx.delete(b"tmp")
    assert tx.get(b"gone") is None
    assert tx.prepare() == 2
    assert sorted(sent, key=lambda s: s[1]) == [(3, b"gone", None), (3, b"k", b"2")]
    tx.commit(position=40)
    assert list(local.scan(b"a", b"\xff")) == [(b"k", b"2")]


def test_the_position_is_never_sent_to_the_changelog() -> None:
    tx, local, sent = make(0)
    tx.put(b"k", b"v")
    tx.prepare()
    tx.commit(position=3)
    assert [key for _, key, _ in sent] == [b"k"]
    assert list(local.scan(b"", b"\xff")) == [(b"k", b"v")]  # not among the engine's keys


def test_a_commit_without_a_position_leaves_the_position_alone() -> None:
    tx, local, _ = make(0)
    local.write_with_bookkeeping([], [position_entry(9)])
    tx.prepare()
    assert tx.commit(position=None) == 0
    assert changelog_position(local) == 9


def _read(tx: PartitionTransaction) -> object:
    return tx.get(b"k")


def _scan(tx: PartitionTransaction) -> object:
    return list(tx.scan(b"", b"\xff"))


def _first(tx: PartitionTransaction) -> object:
    return tx.first(b"", b"\xff")


def _put(tx: PartitionTransaction) -> object:
    tx.put(b"k", b"v")
    return None


def _insert(tx: PartitionTransaction) -> object:
    tx.insert(b"n", b"v")
    return None


def _delete(tx: PartitionTransaction) -> object:
    tx.delete(b"k")
    return None


def _rollback(tx: PartitionTransaction) -> object:
    tx.rollback()
    return None


def _prepare(tx: PartitionTransaction) -> object:
    return tx.prepare()


def _commit(tx: PartitionTransaction) -> object:
    return tx.commit(1)


USES: dict[str, Callable[[PartitionTransaction], object]] = {
    "read": _read,
    "scan": _scan,
    "first": _first,
    "put": _put,
    "insert": _insert,
    "delete": _delete,
    "rollback": _rollback,
    "prepare": _prepare,
    "commit": _commit,
}
ALLOWED = {
    "started": {"read", "scan", "first", "put", "insert", "delete", "rollback", "prepare"},
    "prepared": {"commit"},
    "committed": set(),
    "failed": set(),
}


def _in(status: str) -> PartitionTransaction:
    tx, _, _ = make(2)
    tx.put(b"k", b"v")
    if status in ("prepared", "committed"):
        tx.prepare()
    if status == "committed":
        tx.commit(5)
    if status == "failed":
        tx.fail()
    assert tx.status == status
    return tx


@pytest.mark.parametrize("status", sorted(ALLOWED))
@pytest.mark.parametrize("use", sorted(USES))
def test_every_step_the_status_does_not_allow_raises_a_state_error(status: str, use: str) -> None:
    """A read or write after prepare would miss or lose staged changes; a commit before prepare
    would write what the changelog never got; nothing may follow a commit or a failure."""
    tx = _in(status)
    if use in ALLOWED[status]:
        USES[use](tx)
        return
    with pytest.raises(TransactionStateError, match=f"a {status} transaction"):
        USES[use](tx)
    assert tx.status == status  # a refused step changes nothing
    assert issubclass(TransactionStateError, StateError)


@pytest.mark.parametrize("status", ["started", "prepared", "failed"])
def test_a_transaction_fails_from_any_status_but_committed(status: str) -> None:
    tx = _in(status)
    tx.fail()
    assert tx.status == "failed"


def test_a_committed_transaction_cannot_fail() -> None:
    tx = _in("committed")
    with pytest.raises(TransactionStateError, match="cannot fail a committed"):
        tx.fail()


def test_a_failed_transaction_writes_nothing() -> None:
    tx, local, _ = make(1)
    tx.put(b"k", b"v")
    tx.prepare()
    tx.fail()
    assert list(local.scan(b"", b"\xff")) == []
    with pytest.raises(TransactionStateError):
        tx.commit(9)
    assert changelog_position(local) is None


def test_a_changelog_send_that_raises_fails_the_transaction() -> None:
    def broken(p: int, changes: Sequence[tuple[bytes, bytes | None]]) -> None:
        raise OSError("broker gone")

    tx = PartitionTransaction(MemoryStore(), 0, broken)
    tx.put(b"k", b"v")
    with pytest.raises(OSError, match="broker gone"):
        tx.prepare()
    assert tx.status == "failed"


def test_rollback_forgets_the_writes_and_stays_started() -> None:
    tx, local, _ = make(0)
    local.put(b"k", b"old")
    tx.put(b"k", b"new")
    tx.rollback()
    assert tx.status == "started"
    assert tx.get(b"k") == b"old"
    assert tx.prepare() == 0


def test_flush_is_for_a_transaction_without_changelog_and_goes_on() -> None:
    local = MemoryStore()
    tx = PartitionTransaction(local)
    tx.put(b"k", b"1")
    assert tx.flush() == 1
    assert tx.status == "started"
    assert local.get(b"k") == b"1"
    logged, _, _ = make(0)
    logged.put(b"k", b"v")
    with pytest.raises(TransactionStateError, match="with a changelog"):
        logged.flush()

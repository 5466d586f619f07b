"""The batch transport against the Faust installed: its private API is there, and acking a
partition batch makes Faust commit exactly past it (no broker: the consumer is never started)."""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiokafka
import faust
import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.stores import rocksdb as faust_rocksdb
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers import by_url
from faust.types import TP

from streams.worker import faust_batches
from streams.worker.faust_batches import BatchConsumer, BatchTransport, PartitionBatch


@dataclass(frozen=True)
class _Record:  # the fields of aiokafka's ConsumerRecord a batch reads
    offset: int
    timestamp: int | None = 1_700_000_000_000
    timestamp_type: int = 0


TOPIC = "payments"


@pytest.fixture
def consumer(tmp_path: Path) -> BatchConsumer:
    app = faust.App(
        "recon-unit-batches",
        broker="kafka://127.0.0.1:1",
        broker_consumer=f"{faust_batches.SCHEME}://127.0.0.1:1",
        datadir=str(tmp_path),
        autodiscover=False,
    )
    app.topics.acking_topics.add(TOPIC)
    consumer = app.consumer
    assert isinstance(consumer, BatchConsumer)
    return consumer


def _batch(first: int, last: int, partition: int = 0) -> PartitionBatch:
    records = [_Record(o) for o in range(first, last + 1)]
    return PartitionBatch(TP(TOPIC, partition), records, generation_id=1)


def test_the_transport_is_registered_under_its_scheme() -> None:
    assert by_url(f"{faust_batches.SCHEME}://localhost:9092") is BatchTransport


# Classes whose private attributes are declared on the class or set in __init__ (looked up
# in its source: an instance needs a running consumer).
_INIT_SET = {
    "AIOKafkaConsumerThread": faust_aiokafka.AIOKafkaConsumerThread,
    "AIOKafkaConsumer": aiokafka.AIOKafkaConsumer,
    "GroupCoordinator": GroupCoordinator,
}


@pytest.mark.parametrize("name", faust_batches.PRIVATE_API)
def test_every_private_faust_api_used_is_there(consumer: BatchConsumer, name: str) -> None:
    owner, _, attribute = name.rpartition(".")
    if owner in _INIT_SET:
        cls = _INIT_SET[owner]
        source = inspect.getsource(cls.__init__)
        assert hasattr(cls, attribute) or f"self.{attribute} =" in source, (
            f"{owner}.__init__ no longer sets {attribute}: streams/worker/faust_batches.py "
            "must follow the upgrade"
        )
        return
    if owner == "Store":
        assert hasattr(faust_rocksdb.Store, attribute), (
            f"faust {faust.__version__} no longer has {name}: streams/worker/faust_batches.py "
            "must follow the upgrade"
        )
        return
    if "." in owner:  # a module's name
        assert hasattr(importlib.import_module(owner), attribute), (
            f"aiokafka {aiokafka.__version__} no longer has {name}: "
            "streams/worker/faust_batches.py must follow the upgrade"
        )
        return
    target = faust_batches.ack_lock if owner == "" else consumer
    assert owner in ("", "Consumer", "ThreadDelegateConsumer"), name
    assert attribute == "ack_lock" or hasattr(target, attribute), (
        f"faust {faust.__version__} no longer has {name}: streams/worker/faust_batches.py "
        "must follow the upgrade"
    )


def test_a_batch_carries_its_records_and_its_last_offset() -> None:
    batch = _batch(100, 149)
    assert (batch.first, batch.offset, len(batch.records)) == (100, 149, 50)
    assert batch.timestamp == 1_700_000_000.0
    assert batch.key is None
    assert batch.value is None


@pytest.mark.parametrize("committed", [None, 0, 1, 100])
def test_acking_batches_in_order_commits_past_the_last(
    consumer: BatchConsumer, committed: int | None
) -> None:
    tp = TP(TOPIC, 0)
    start = committed or 0
    consumer._committed_offset[tp] = committed
    first, second = _batch(start, start + 99), _batch(start + 100, start + 149)
    assert consumer._new_offset(tp) is None  # nothing acked: nothing to commit
    assert consumer.ack(first)
    assert consumer._new_offset(tp) == start + 100
    consumer._committed_offset[tp] = start + 100
    assert consumer.ack(second)
    assert consumer._new_offset(tp) == start + 150
    assert not consumer.ack(second)  # acked once


def test_a_batch_acks_from_the_committed_offset(consumer: BatchConsumer) -> None:
    # Acks come after the whole worker batch (every batch in it) is applied, in offset order.
    tp = TP(TOPIC, 0)
    consumer._committed_offset[tp] = 10
    consumer.ack(_batch(20, 29))
    assert consumer._new_offset(tp) == 30


def test_a_redelivered_batch_overlapping_acked_offsets_commits_once(
    consumer: BatchConsumer,
) -> None:
    tp = TP(TOPIC, 0)
    consumer._committed_offset[tp] = None
    consumer.ack(_batch(0, 9))
    consumer.ack(_batch(5, 14))  # fetched again after a seek
    assert consumer._new_offset(tp) == 15


def test_offsets_skipped_before_a_batch_are_acked_with_it(consumer: BatchConsumer) -> None:
    """Across a rebalance the consumer delivered 232.. while the group had committed 197; the
    worker read 197..231 again (or its state had them). Acked from the batch's first offset,
    Faust never committed this partition again: the stall of the fault suite's rebalance."""
    tp = TP(TOPIC, 0)
    consumer._committed_offset[tp] = 197
    assert consumer.ack(_batch(232, 240))
    assert consumer._new_offset(tp) == 241
    consumer._committed_offset[tp] = 241
    assert consumer.ack(_batch(241, 250))
    assert consumer._new_offset(tp) == 251
    assert not consumer._acked[tp]  # nothing piles up


def test_a_stream_buffer_under_pressure_keeps_every_partition_fetched(
    consumer: BatchConsumer,
) -> None:
    """Faust drops a partition from the fetch when the stream buffer fills. Every input
    partition feeds the one agent's buffer, so a pause in the agent dropped them all, and
    Faust's fetcher then slept a second per round: a latency step of 2-3 s that stayed."""
    tps = {TP(TOPIC, 0), TP(TOPIC, 1), TP("ledger", 0)}
    consumer._set_active_tps(tps)
    for tp in tps:
        consumer.on_buffer_full(tp)
    assert consumer._get_active_partitions() == tps
    # What Faust's own consumer does, and what the override prevents:
    faust_aiokafka.Consumer.on_buffer_full(consumer, TP(TOPIC, 0))
    assert TP(TOPIC, 0) not in consumer._get_active_partitions()


def _consumer_with(member_id: str, generation: int, rejoin_needed: bool) -> object:
    """The shape group_membership reads: Faust's consumer -> its thread -> aiokafka's
    consumer -> its group coordinator."""
    loop = asyncio.new_event_loop()
    try:
        rejoin: asyncio.Future[None] = loop.create_future()
        if rejoin_needed:
            rejoin.set_result(None)
    finally:
        loop.close()
    coordinator = SimpleNamespace(
        member_id=member_id, generation=generation, _rejoin_needed_fut=rejoin
    )
    inner = SimpleNamespace(_coordinator=coordinator)
    return SimpleNamespace(_thread=SimpleNamespace(_consumer=inner))


def test_group_membership_holds_while_the_member_neither_changed_nor_must_rejoin() -> None:
    assert faust_batches.group_membership(_consumer_with("m-1", 4, False)) == (4, "m-1")
    # Asked to rejoin (membership expired, a rebalance began): no longer sure of its partitions.
    assert faust_batches.group_membership(_consumer_with("m-1", 4, True)) is None
    # Not joined yet (aiokafka's UNKNOWN_MEMBER_ID is the empty string).
    assert faust_batches.group_membership(_consumer_with("", -1, False)) is None
    # A consumer not started has no aiokafka consumer behind its thread.
    assert faust_batches.group_membership(SimpleNamespace(_thread=None)) is None


def test_partition_db_is_the_tables_rocksdb_of_that_partition(tmp_path: Path) -> None:
    app = faust.App(
        "recon-unit-partition-db",
        broker="kafka://127.0.0.1:1",
        store="rocksdb://",
        datadir=str(tmp_path),
        autodiscover=False,
    )
    table = app.Table("state", key_type=bytes, value_type=bytes, partitions=2)
    db = faust_batches.partition_db(table, 1)
    db[b"k"] = b"v"
    assert faust_batches.partition_db(table, 1) is db
    assert faust_batches.partition_db(table, 0) is not db
    assert faust_batches.partition_db(table, 0).get(b"k") is None


ROOT = Path(__file__).resolve().parents[3]
# Underscore names that are public where they live: librdkafka's local error codes, os._exit.
_PUBLIC_UNDERSCORED = {"_exit", "_PARTITION_EOF", "_QUEUE_FULL", "_STATE", "_TRANSPORT",
                       "_TIMED_OUT", "_UNKNOWN_PARTITION", "_ALL_BROKERS_DOWN"}  # fmt: skip


def _reaches_into(path: Path) -> list[str]:
    """``x._name`` and ``getattr(x, "_name")`` where x is not self or cls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            name, owner = node.attr, node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "getattr"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        else:
            continue
        if name.startswith("_") and not name.startswith("__") and name not in _PUBLIC_UNDERSCORED:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_no_other_module_of_the_worker_reaches_into_faust_or_aiokafka() -> None:
    """Every private Faust or aiokafka access goes through faust_batches (and PRIVATE_API)."""
    found = []
    for path in sorted((ROOT / "streams").rglob("*.py")):
        source = path.read_text()
        if path.name == "faust_batches.py" or not any(
            f"import {lib}" in source or f"from {lib}" in source
            for lib in ("faust", "aiokafka", "mode")
        ):
            continue
        found += _reaches_into(path)
    assert found == []

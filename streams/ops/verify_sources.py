"""What ``recon verify`` reads: the inputs from Kafka, the rows from PostgreSQL, and the open
state of the workers from their state changelog.

The workers' state changelog is written in the same Kafka transaction as their outputs, and it
is what a worker restores from, so reading it (read_committed) gives the open groups and
buffered events exactly as of the outputs the sink has stored, without stopping a worker.

The check is taken at a cut: the input end offsets when it starts. It first waits until the
worker group has committed past the cut and the sink has stored every committed output, so
everything before the cut has had its outcome written.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from connectors.postgres.settings import SinkSettings
from streams.contract.decode import Rejection, RejectReason
from streams.contract.model import Heartbeat, InputEvent, Side
from streams.engine.engine import MatchingEngine
from streams.engine.read_views import GroupStatus
from streams.ops.describe import group_lags, partition_offsets
from streams.ops.exceptions import OpsError
from streams.ops.verify import (
    Coordinates,
    EventKey,
    ExceptionRow,
    InputRow,
    MatchRow,
    StateMember,
)
from streams.state.recovery import restore
from streams.state.rocksdict_store import RocksDictStore
from streams.worker.decoder import input_decoder
from streams.worker.partitioning import partition_for
from streams.worker.settings import WorkerSettings
from streams.worker.topics import changelog_topic_name

Progress = Callable[[int], object]


class NotCaughtUpError(OpsError):
    """The worker or the sink has not yet written the outcome of every input before the cut."""


def _tps(admin: AdminClient, topics: list[str]) -> list[TopicPartition]:
    metadata = admin.list_topics(timeout=30).topics
    return [
        TopicPartition(t, p)
        for t in topics
        if t in metadata
        for p in sorted(metadata[t].partitions)
    ]


def input_ends(worker: WorkerSettings) -> dict[tuple[str, int], int]:
    """The cut: each input partition's end offset now."""
    admin = AdminClient(worker.kafka.confluent_config())
    tps = _tps(admin, [worker.topics.payments, worker.topics.ledger])
    return partition_offsets(admin, tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]


def wait_caught_up(
    worker: WorkerSettings,
    sink: SinkSettings,
    cut: Mapping[tuple[str, int], int],
    timeout_s: float,
) -> None:
    """Until the worker group's committed offsets reach the cut and no committed output record
    is left that the sink has not stored; raises NotCaughtUpError naming what lags."""
    admin = AdminClient(worker.kafka.confluent_config())
    deadline = time.monotonic() + timeout_s
    inputs = [TopicPartition(t, p) for t, p in cut]
    while True:
        lags = {
            (p.topic, p.partition): p.committed for p in group_lags(admin, worker.app_id, inputs)
        }
        behind = {tp: end for tp, end in cut.items() if end > 0 and (lags.get(tp) or 0) < end}
        if not behind:
            break
        if time.monotonic() > deadline:
            raise NotCaughtUpError(f"the worker group {worker.app_id!r} has not reached {behind}")
        time.sleep(0.5)
    outputs = _tps(admin, [worker.topics.matched, worker.topics.exceptions, worker.topics.dlq])
    while True:
        left = _unstored_outputs(worker, sink, outputs)
        if not left:
            return
        if time.monotonic() > deadline:
            raise NotCaughtUpError(f"the sink has not stored outputs of {sorted(left)}")
        time.sleep(0.5)


def _unstored_outputs(
    worker: WorkerSettings, sink: SinkSettings, outputs: list[TopicPartition]
) -> set[tuple[str, int]]:
    """Output partitions with a committed record after the offset the sink stored."""
    with psycopg.connect(sink.database_url, options=f"-csearch_path={sink.schema}") as conn:
        try:
            rows = conn.execute(
                "SELECT topic, partition, last_offset FROM recon_sink_offsets"
                " WHERE consumer_group = %s",
                [sink.group_id],
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []
    stored = {(str(t), int(p)): int(o) for t, p, o in rows}
    starts = [
        TopicPartition(tp.topic, tp.partition, stored.get((tp.topic, tp.partition), -1) + 1)
        for tp in outputs
    ]
    left: set[tuple[str, int]] = set()
    for msg in _read(worker, starts, None):
        if msg.error() is None:
            left.add((str(msg.topic()), int(msg.partition() or 0)))
    return left


def _read(
    worker: WorkerSettings,
    starts: list[TopicPartition],
    ends: Mapping[tuple[str, int], int] | None,
    progress: Progress | None = None,
) -> Iterator[Any]:
    """Committed records of each partition from its start to its end (None: the partition's
    end now), in offset order per partition."""
    consumer = Consumer(
        {
            **worker.kafka.confluent_config(),
            "group.id": f"{worker.app_id}.verify",  # required by librdkafka; nothing committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        todo = set()
        assignment = []
        for tp in starts:
            key = (tp.topic, tp.partition)
            start = tp.offset if tp.offset >= 0 else 0
            if ends is not None and ends.get(key, 0) <= start:
                continue
            todo.add(key)
            assignment.append(
                TopicPartition(
                    tp.topic, tp.partition, tp.offset if tp.offset > 0 else OFFSET_BEGINNING
                )
            )
        if not assignment:
            return
        consumer.assign(assignment)
        done = 0
        while todo:
            for msg in consumer.consume(num_messages=5000, timeout=1.0):
                key = (str(msg.topic()), int(msg.partition() or 0))
                if key not in todo:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(key)
                        continue
                    raise OpsError(f"{key[0]}[{key[1]}]: {err}")
                offset = int(msg.offset() or 0)
                if ends is not None and offset >= ends[key]:
                    todo.discard(key)
                    continue
                done += 1
                if progress is not None and done % 5000 == 0:
                    progress(done)
                yield msg
                if ends is not None and offset + 1 >= ends[key]:
                    todo.discard(key)
        if progress is not None:
            progress(done)
    finally:
        consumer.close()


def read_inputs(
    worker: WorkerSettings,
    starts: Mapping[tuple[str, int], int],
    ends: Mapping[tuple[str, int], int],
    progress: Progress | None = None,
) -> Iterator[InputRow]:
    """The input records in ``[starts, ends)``, decoded and checked as the worker does (with
    its schema registry too)."""
    decoder = input_decoder(worker)
    sides = {worker.topics.payments: Side.PAYMENT, worker.topics.ledger: Side.LEDGER}
    ahead = worker.max_event_time_ahead_ms
    tps = [TopicPartition(t, p, starts.get((t, p), 0)) for t, p in ends]
    for msg in _read(worker, tps, ends, progress):
        topic, partition, offset = str(msg.topic()), int(msg.partition() or 0), int(msg.offset())
        item = decoder.decode(sides[topic], msg.key(), msg.value(), offset)
        if isinstance(item, Rejection):
            yield InputRow(topic, partition, offset, None, item.reason.value)
            continue
        _, stamp = msg.timestamp()
        if ahead and stamp is not None and stamp >= 0 and item.event_time_ms > stamp + ahead:
            yield InputRow(topic, partition, offset, None, RejectReason.BAD_EVENT_TIME.value)
        elif isinstance(item, Heartbeat):
            yield InputRow(topic, partition, offset, None, heartbeat=True)
        elif partition_for(item.reference.encode(), worker.partitions) != partition:
            yield InputRow(topic, partition, offset, None, "KEY_MISMATCH")
        else:
            assert isinstance(item, InputEvent)
            yield InputRow(topic, partition, offset, item)


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if value is not None else 0


def read_rows(
    sink: SinkSettings, inputs: list[str]
) -> tuple[list[MatchRow], list[ExceptionRow], list[Coordinates]]:
    """The match and exception rows, and the source coordinates of the worker's dead letters
    of ``inputs``."""
    with psycopg.connect(sink.database_url, options=f"-csearch_path={sink.schema}") as conn:
        matches = [
            MatchRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]).strip(), int(r[4]), int(r[5]), int(r[6]),
                     tuple(r[7]), tuple(r[8]), _ms(r[9]), r[10])
            for r in conn.execute(
                "SELECT match_id, reference, rule, currency, payment_amount_minor,"
                " ledger_amount_minor, difference_minor, payment_event_ids, ledger_event_ids,"
                " first_event_time, exception_id FROM recon_matches"
            )
        ]  # fmt: skip
        exceptions = [
            ExceptionRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]),
                         tuple(r[6]), tuple(r[7]), _ms(r[8]))
            for r in conn.execute(
                "SELECT exception_id, reference, kind, status, payment_amount_minor,"
                " ledger_amount_minor, payment_event_ids, ledger_event_ids, raised_at"
                " FROM recon_exceptions"
            )
        ]  # fmt: skip
        dead = [
            (str(t), int(p), int(o))
            for t, p, o in conn.execute(
                "SELECT source_topic, source_partition, source_offset FROM recon_dead_letters"
                " WHERE origin = 'worker' AND source_topic = ANY(%s)",
                [inputs],
            )
        ]
    return matches, exceptions, dead


def read_state(worker: WorkerSettings, exceptions: list[ExceptionRow]) -> list[StateMember]:
    """The events the workers' state holds that no output lists: buffered events, members of
    open groups, and members of raised groups that joined after the raising."""
    listed: dict[str, set[tuple[Side, str]]] = {
        x.exception_id: {(Side.PAYMENT, i) for i in x.payment_ids}
        | {(Side.LEDGER, i) for i in x.ledger_ids}
        for x in exceptions
    }
    engine = MatchingEngine(worker.match)
    out: list[StateMember] = []
    with tempfile.TemporaryDirectory(prefix="recon-verify-") as tmp:
        stores = {p: RocksDictStore(Path(tmp) / str(p)) for p in range(worker.partitions)}
        try:
            restore(worker.kafka, changelog_topic_name(worker), stores)
            for p, store in stores.items():
                snap = engine.snapshot(store, p)
                for b in snap.buffered:
                    out.append(StateMember(p, b.side, b.event_id, b.amount_minor, "buffered"))
                for g in snap.groups:
                    skip = (
                        listed.get(g.exception_id or "", set())
                        if g.status is GroupStatus.RAISED
                        else set()
                    )
                    where = "raised group" if g.status is GroupStatus.RAISED else "open group"
                    for side, members in (
                        (Side.PAYMENT, g.payment_events),
                        (Side.LEDGER, g.ledger_events),
                    ):
                        for m in members:
                            if (side, m.event_id) not in skip:
                                out.append(StateMember(p, side, m.event_id, m.amount_minor, where))
        finally:
            for store in stores.values():
                store.close()
    return out


def later_ids(rows: Iterator[InputRow]) -> set[EventKey]:
    return {(r.partition, r.event.side, r.event.event_id) for r in rows if r.event is not None}

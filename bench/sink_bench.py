"""Benchmark of the PostgreSQL sink (a script, not a test).

    .venv/bin/python bench/sink_bench.py [--records 200000] [--batch-size 5000]

1. Batch writer: N encoded Match records through ``PostgresSink`` in batches: decode +
   validation (Python) and COPY + upsert + offsets (PostgreSQL), timed separately.
2. Raw COPY: the same rows as a plain binary COPY into ``recon_matches`` of a fresh schema
   (the same partitioned table with the same indexes), the same batches, one transaction each:
   the floor of what any sink on this table can cost.
3. End to end: N records produced to a fresh 3-partition topic, then ``run_sink`` from an empty
   group, timed from the first record it reads to the last offset stored (see
   :func:`time_sink`).
Uses throw-away schemas and topics on the configured DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connectors.base import SinkRecord, TopicPartitionKey
from connectors.postgres import binary_copy
from connectors.postgres.partitions import PartitionManager
from connectors.postgres.rows import (
    MATCH_COLUMNS,
    MATCH_KINDS,
    Row,
    RowBuilder,
    month_of_ms,
)
from connectors.postgres.run import consumer_config, run_sink
from connectors.postgres.settings import SinkSettings, sink_settings_from_env
from connectors.postgres.writer import PostgresSink
from streams.contract.codec import encode_match
from streams.contract.model import Flow, MatchRecord, Rule
from streams.settings import KafkaSettings, TopicNames

BASE_MS = 1_767_225_600_000


def make_values(n: int) -> list[bytes]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        pay = rng.randrange(1, 10**8)
        first = BASE_MS + rng.randrange(0, 90 * 86_400_000)
        out.append(
            encode_match(
                MatchRecord(
                    f"bench-{i:09d}",
                    f"REF-{i % 50_000:06d}",
                    Flow.PAYMENT,
                    rng.choice(list(Rule)),
                    "EUR",
                    pay,
                    pay,
                    0,
                    (f"p-{i}",),
                    (f"l-{i}",),
                    first,
                    first + 60_000,
                    None,
                )
            )
        )
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class WriterRun:
    rows: int
    prepare_s: float  # decode + validate (Python)
    write_s: float  # COPY + upsert + offsets (PostgreSQL)


def bench_writer(settings: SinkSettings, values: list[bytes], batch_size: int) -> WriterRun:
    sink = PostgresSink(settings)
    sink.open()
    rows = RowBuilder()
    prep_s = write_s = 0.0
    try:
        for start in range(0, len(values), batch_size):
            chunk = [
                SinkRecord("bench", 0, start + i, BASE_MS, None, v)
                for i, v in enumerate(values[start : start + batch_size])
            ]
            t0 = time.perf_counter()
            prepared = rows.prepare(chunk)
            t1 = time.perf_counter()
            sink.write_prepared(prepared)
            write_s += time.perf_counter() - t1
            prep_s += t1 - t0
    finally:
        sink.close()
    return WriterRun(len(values), prep_s, write_s)


def match_rows(records: Sequence[SinkRecord]) -> list[Row]:
    """The rows the sink would write to ``recon_matches`` for these records."""
    return list(RowBuilder().prepare(records).matches.values())


def copy_rows(
    settings: SinkSettings,
    rows: Sequence[Row],
    batch_size: int,
    progress: Callable[[int], object] | None = None,
) -> float:
    """Seconds to binary-COPY ``rows`` straight into ``recon_matches`` of ``settings.schema``,
    in batches of ``batch_size``, one transaction each. The schema is set up as the sink does
    (migrations, premade partitions, the rows' months), outside the timing."""
    sink = PostgresSink(settings)
    sink.open()
    sink.close()
    months = {month_of_ms(r[MATCH_COLUMNS.index("first_event_time")]) for r in rows}
    manager = PartitionManager(
        settings.schema, settings.partitions_past_months, settings.partitions_future_months
    )
    elapsed = 0.0
    with psycopg.connect(
        settings.database_url, options=f"-csearch_path={settings.schema}", autocommit=True
    ) as conn:
        manager.ensure(conn, {"recon_matches": months})
        for start in range(0, len(rows), batch_size):
            # Encoded outside the timing: this is the floor of the database's own cost.
            stream = binary_copy.encode(MATCH_KINDS, rows[start : start + batch_size])
            began = time.perf_counter()
            with conn.transaction():
                # The sink's own COPY helper, into the target table instead of its staging table.
                PostgresSink._copy(conn, "recon_matches", MATCH_COLUMNS, stream)
            elapsed += time.perf_counter() - began
            if progress is not None:
                progress(min(start + batch_size, len(rows)))
    return elapsed


def read_topic(
    kafka: KafkaSettings, topic: str, timeout_s: float = 120
) -> tuple[list[SinkRecord], dict[TopicPartitionKey, int]]:
    """Every committed record of ``topic`` (read_committed, as the sink reads), and the offset
    of the last one per partition (a transactional topic ends in a commit marker)."""
    consumer = Consumer(
        {
            **kafka.confluent_config(),
            "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[SinkRecord] = []
        last: dict[TopicPartitionKey, int] = {}
        ended: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(ended) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: read {len(records)} records, not to the end")
            for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                _read_one(msg, records, last, ended)
        return records, last
    finally:
        consumer.close()


def _read_one(
    msg: Message,
    records: list[SinkRecord],
    last: dict[TopicPartitionKey, int],
    ended: set[int],
) -> None:
    partition, offset, err = msg.partition(), msg.offset(), msg.error()
    assert partition is not None
    assert offset is not None
    if err is not None:
        if err.code() != KafkaError._PARTITION_EOF:
            raise RuntimeError(f"reading {msg.topic()}: {err}")
        ended.add(partition)
        return
    topic = msg.topic()
    assert topic is not None
    records.append(SinkRecord(topic, partition, offset, msg.timestamp()[1], msg.key(), msg.value()))
    last[(topic, partition)] = offset


class _FirstRead:
    """A sink consumer that notes when the first record arrived: the sink's first input."""

    def __init__(self, inner: Consumer) -> None:
        self._inner = inner
        self.first: float | None = None

    def consume(self, *args: Any, **kwargs: Any) -> list[Message]:
        messages: list[Message] = self._inner.consume(*args, **kwargs)
        if self.first is None and any(m.error() is None for m in messages):
            self.first = time.perf_counter()
        return messages

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclasses.dataclass(frozen=True, slots=True)
class SinkRun:
    rows: int  # records the sink wrote (one per Kafka record here)
    seconds: float  # first record read -> last offset stored with its rows
    from_start_s: float  # the same from the sink's start (group join, migrations)

    @property
    def rps(self) -> float:
        return self.rows / self.seconds


def time_sink(
    settings: SinkSettings,
    last: Mapping[TopicPartitionKey, int],
    rows: int,
    progress: Callable[[int], object] | None = None,
    poll_s: float = 0.02,
    timeout_s: float = 900,
) -> SinkRun:
    """Run the sink (in a thread) on ``settings.topics`` until the offsets it stored reach
    ``last`` for every partition; ``rows`` is what that makes. Every record is stored with its offsets in one transaction,
    so the moment they reach ``last`` is the moment the last row was committed."""
    consumer = _FirstRead(Consumer(consumer_config(settings)))
    stop = threading.Event()
    thread = threading.Thread(target=run_sink, args=(settings, stop, consumer), daemon=True)
    t0 = time.perf_counter()
    thread.start()
    try:
        with psycopg.connect(
            settings.database_url, options=f"-csearch_path={settings.schema}", autocommit=True
        ) as conn:
            while True:
                time.sleep(poll_s)
                if not thread.is_alive():
                    raise RuntimeError("the sink stopped early")
                if time.perf_counter() - t0 > timeout_s:
                    raise TimeoutError("the sink did not catch up")
                try:
                    found = conn.execute(
                        "SELECT topic, partition, last_offset FROM recon_sink_offsets"
                        " WHERE consumer_group = %s",
                        [settings.group_id],
                    ).fetchall()
                except psycopg.errors.UndefinedTable:
                    continue  # the sink has not applied its migrations yet
                stored = {(str(t), int(str(p))): int(str(o)) for t, p, o in found}
                if progress is not None:
                    progress(sum(stored.get(k, -1) + 1 for k in last))
                if all(stored.get(k, -1) >= o for k, o in last.items()):
                    break
        t1 = time.perf_counter()
    finally:
        stop.set()
        thread.join(60)
    first = consumer.first if consumer.first is not None else t0
    return SinkRun(rows, t1 - first, t1 - t0)


def _produce(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    p = Producer(kafka.confluent_config() | {"partitioner": "murmur2_random", "linger.ms": 20})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, v, key=f"REF-{i % 50_000:06d}".encode())
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python bench/sink_bench.py", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    base = dataclasses.replace(sink_settings_from_env(), batch_size=args.batch_size)
    values = make_values(args.records)
    schemas = [f"bench_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        w = bench_writer(dataclasses.replace(base, schema=schemas[0]), values, args.batch_size)
        n = w.rows
        print(f"batch writer: {n} match rows, batches of {args.batch_size}")
        print(f"  decode+validate : {n / w.prepare_s:>10,.0f} rows/s ({w.prepare_s:.2f} s)")
        print(f"  PG COPY+upsert  : {n / w.write_s:>10,.0f} rows/s ({w.write_s:.2f} s)")
        print(f"  together        : {n / (w.prepare_s + w.write_s):>10,.0f} rows/s")
        records = [SinkRecord("bench", 0, i, BASE_MS, None, v) for i, v in enumerate(values)]
        copy_s = copy_rows(
            dataclasses.replace(base, schema=schemas[1]), match_rows(records), args.batch_size
        )
        print(f"raw binary COPY into recon_matches: {n / copy_s:>10,.0f} rows/s ({copy_s:.2f} s)")
        if not args.skip_e2e:
            _end_to_end(dataclasses.replace(base, schema=schemas[2]), values, n / copy_s)
    finally:
        with psycopg.connect(base.database_url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return 0


def _end_to_end(settings: SinkSettings, values: list[bytes], copy_rps: float) -> None:
    kafka = settings.kafka
    admin = AdminClient(kafka.confluent_config())
    topic = f"bench.matched.{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    try:
        _produce(kafka, topic, values)
        _, last = read_topic(kafka, topic)
        s = dataclasses.replace(
            settings,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            topics=TopicNames(matched=topic, exceptions=topic, dlq=topic),
        )
        run = time_sink(s, last, len(values))
        n = len(values)
        print(f"end to end: {n} records, Kafka topic (3 partitions) -> PostgreSQL")
        print(f"  from start (incl. group join) : {n / run.from_start_s:>10,.0f} rows/s")
        print(
            f"  from first record read        : {n / run.seconds:>10,.0f} rows/s"
            f" ({n / run.seconds / copy_rps:.2f} of raw COPY)"
        )
    finally:
        admin.delete_topics([topic])[topic].result(30)


if __name__ == "__main__":
    raise SystemExit(main())

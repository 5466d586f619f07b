"""Benchmark of the PostgreSQL sink (a script, not a test).

    .venv/bin/python -m connectors.postgres.bench [--records 200000] [--batch-size 5000]

1. Batch writer: N encoded Match records through ``PostgresSink`` in batches: decode +
   validation (Python) and COPY + upsert + offsets (PostgreSQL), timed separately.
2. End to end: N records produced to a fresh 3-partition topic, then ``run_sink`` from an empty
   group until the offsets table has caught up (includes the group join).
Uses throw-away schemas and topics on the configured DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import threading
import time
import uuid

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connectors.base import SinkRecord
from connectors.postgres.rows import RowBuilder
from connectors.postgres.run import run_sink
from connectors.postgres.settings import SinkSettings, sink_settings_from_env
from connectors.postgres.writer import PostgresSink
from streams.contract.codec import encode_match
from streams.contract.model import Flow, MatchRecord, Rule
from streams.settings import TopicNames

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


def bench_writer(settings: SinkSettings, values: list[bytes], batch_size: int) -> None:
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
    n = len(values)
    print(f"batch writer: {n} match rows, batches of {batch_size}")
    print(f"  decode+validate : {n / prep_s:>10,.0f} rows/s ({prep_s:.2f} s)")
    print(f"  PG COPY+upsert  : {n / write_s:>10,.0f} rows/s ({write_s:.2f} s)")
    print(f"  together        : {n / (prep_s + write_s):>10,.0f} rows/s")


def bench_end_to_end(settings: SinkSettings, values: list[bytes]) -> None:
    kafka = settings.kafka.confluent_config()
    admin = AdminClient(kafka)
    topic = f"bench.matched.{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    try:
        p = Producer(kafka | {"partitioner": "murmur2_random", "linger.ms": 20})
        for i, v in enumerate(values):
            while True:
                try:
                    p.produce(topic, v, key=f"REF-{i % 50_000:06d}".encode())
                    break
                except BufferError:
                    p.poll(0.05)
        p.flush(60)
        probe = Consumer(kafka | {"group.id": "bench-probe"})
        highs = {
            pt: probe.get_watermark_offsets(TopicPartition(topic, pt), timeout=10)[1]
            for pt in range(3)
        }
        probe.close()
        s = dataclasses.replace(
            settings,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            topics=TopicNames(matched=topic, exceptions=topic, dlq=topic),
        )
        stop = threading.Event()
        thread = threading.Thread(target=run_sink, args=(s, stop))
        t0 = time.perf_counter()
        thread.start()
        first: float | None = None
        with psycopg.connect(s.database_url, options=f"-csearch_path={s.schema}") as conn:
            while True:
                time.sleep(0.05)
                if not thread.is_alive():
                    raise RuntimeError("the sink stopped early")
                try:
                    rows = conn.execute(
                        "SELECT partition, last_offset FROM recon_sink_offsets"
                        " WHERE consumer_group = %s",
                        [s.group_id],
                    ).fetchall()
                except psycopg.Error:
                    conn.rollback()
                    continue
                conn.rollback()
                if rows and first is None:
                    first = time.perf_counter()
                done = {int(pt): int(o) for pt, o in rows}
                if all(done.get(pt, -1) == h - 1 for pt, h in highs.items()):
                    break
        t1 = time.perf_counter()
        stop.set()
        thread.join(60)
        n = len(values)
        print(f"end to end: {n} records, Kafka topic (3 partitions) -> PostgreSQL")
        print(f"  from start (incl. group join) : {n / (t1 - t0):>10,.0f} rows/s ({t1 - t0:.2f} s)")
        if first is not None:
            print(f"  from first commit             : {n / (t1 - first):>10,.0f} rows/s")
    finally:
        admin.delete_topics([topic])[topic].result(30)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.postgres.bench", description=__doc__
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    base = sink_settings_from_env()
    values = make_values(args.records)
    schemas = [f"bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        bench_writer(dataclasses.replace(base, schema=schemas[0]), values, args.batch_size)
        if not args.skip_e2e:
            bench_end_to_end(
                dataclasses.replace(base, schema=schemas[1], batch_size=args.batch_size), values
            )
    finally:
        with psycopg.connect(base.database_url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

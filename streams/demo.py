"""``recon demo``: proves the infrastructure end to end.

Until the worker and the sink land, the demo is a round trip: it produces a few events to a
fresh 3-partition topic, reads them back with a consumer group (aiokafka, the client Faust
uses), and checks PostgreSQL answers.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=10, help="events to round-trip")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_roundtrip(args.count))


async def _roundtrip(count: int) -> int:
    import psycopg
    from aiokafka import AIOKafkaConsumer
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    from streams.settings import database_url_from_env, kafka_from_env

    kafka = kafka_from_env()
    topic = f"recon.demo.roundtrip.{int(time.time() * 1000)}"
    admin = AdminClient(kafka.confluent_config())
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result()

    producer = Producer({**kafka.confluent_config(), "partitioner": "murmur2_random"})
    for i in range(count):
        ref = f"REF-{i:04d}"
        producer.produce(topic, key=ref.encode(), value=orjson.dumps({"reference": ref, "n": i}))
    producer.flush(30)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"{topic}.group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 30
        while sum(seen.values()) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                seen[tp.partition] = seen.get(tp.partition, 0) + len(records)
        await consumer.commit()
    finally:
        await consumer.stop()
    admin.delete_topics([topic])

    with psycopg.connect(database_url_from_env()) as conn:
        row = conn.execute("SELECT version()").fetchone()
    print(f"kafka  {kafka.bootstrap_servers}: produced {count}, consumed {sum(seen.values())}")
    print(f"       per partition: {dict(sorted(seen.items()))}")
    print(f"postgres: {row[0] if row else '?'}")
    return 0 if sum(seen.values()) == count else 1

"""The limit a Python worker on this machine can reach: a raw confluent-kafka pass-through.

Produces the worker bench's simulated records (same seed, same count) to fresh input topics,
then times a plain librdkafka loop that consumes both inputs in batches
(``Consumer.consume(num_messages=...)``) and produces every record to one output topic, from the
first record consumed to the last one acknowledged. With ``--parse`` it also runs
``orjson.loads`` on every value. Compare the worker's records/s with this figure from the same
run (``python bench/worker_bench.py``, or ``bench/suite.py`` for both at once).

    python bench/passthrough.py [--count 100000] [--partitions 3] [--parse]
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.engine.config import MatchConfig
from streams.settings import KafkaSettings, TopicNames, kafka_from_env
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate


def create_topics(kafka: KafkaSettings, names: Sequence[str], partitions: int) -> None:
    admin = AdminClient(kafka.confluent_config())
    specs = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    for future in admin.create_topics(specs, operation_timeout=30).values():
        future.result(timeout=60)


def delete_topics(kafka: KafkaSettings, names: Sequence[str]) -> None:
    admin = AdminClient(kafka.confluent_config())
    for future in admin.delete_topics(list(names), operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--parse", action="store_true", help="orjson.loads every value too")
    args = parser.parse_args()

    kafka = kafka_from_env()
    tag = uuid.uuid4().hex[:8]
    topics = TopicNames(
        payments=f"pt.{tag}.payments",
        ledger=f"pt.{tag}.ledger",
        matched=f"pt.{tag}.out",
        exceptions=f"pt.{tag}.unused-x",
        dlq=f"pt.{tag}.unused-d",
    )
    names = [topics.payments, topics.ledger, topics.matched]
    create_topics(kafka, names, args.partitions)
    try:
        config = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10)
        sim = simulate(args.count, seed=5, config=config)
        produce(sim, kafka, topics, args.partitions)
        total = len(sim.records) + 2 * args.partitions
        seconds = pass_through(
            kafka,
            (topics.payments, topics.ledger),
            topics.matched,
            args.partitions,
            total,
            parse=args.parse,
        )
        what = "pass-through + orjson.loads" if args.parse else "pass-through"
        print(f"{what}: {total:,} records in {seconds:.2f}s = {total / seconds:,.0f} records/s")
    finally:
        delete_topics(kafka, names)


def pass_through(
    kafka: KafkaSettings,
    sources: Sequence[str],
    out: str,
    partitions: int,
    total: int,
    *,
    parse: bool = False,
    progress: Callable[[int], object] | None = None,
) -> float:
    """Copy ``total`` records from ``sources`` (every partition, from the start) to ``out``;
    the seconds from the first record consumed to the last one acknowledged."""
    conf = kafka.confluent_config()
    consumer = Consumer(
        {**conf, "group.id": f"passthrough-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(t, p, 0) for t in sources for p in range(partitions)])
    producer = Producer({**conf, "linger.ms": 5, "batch.num.messages": 10_000})
    seen = 0
    started: float | None = None
    while seen < total:
        batch = consumer.consume(num_messages=10_000, timeout=1.0)
        if started is None and batch:
            started = time.perf_counter()
        for msg in batch:
            if msg.error():
                continue
            value = msg.value()
            if parse and value:
                with contextlib.suppress(orjson.JSONDecodeError):
                    orjson.loads(value)
            while True:
                try:
                    producer.produce(out, value=value, key=msg.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            seen += 1
        producer.poll(0)
        if progress is not None:
            progress(seen)
    producer.flush(60)
    consumer.close()
    assert started is not None
    return time.perf_counter() - started


if __name__ == "__main__":
    main()

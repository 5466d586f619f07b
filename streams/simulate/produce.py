"""Produce a simulation to the input topics like upstream would: murmur2, by reference."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from streams.contract.model import Side
from streams.settings import KafkaSettings, TopicNames
from streams.simulate.encoding import Format, encode_value, heartbeat
from streams.simulate.scenarios import Simulation


@dataclass(frozen=True, slots=True)
class ProduceStats:
    records: int
    heartbeats: int
    seconds: float


def producer_config(kafka: KafkaSettings) -> dict[str, object]:
    return {
        **kafka.confluent_config(),
        # Kafka's Java-compatible murmur2, as Faust uses: confluent-kafka's default is CRC32.
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
    }


def produce(
    sim: Simulation,
    kafka: KafkaSettings,
    topics: TopicNames,
    partitions: int,
    *,
    fmt: Format = "json",
    rate: float = 0.0,
    flush_heartbeats: bool = True,
) -> ProduceStats:
    """Send every record in emission order (``rate`` records/s, 0 = as fast as possible), then
    a heartbeat on every partition of both inputs so every deadline of the run fires."""
    producer = Producer(producer_config(kafka))
    names = {Side.PAYMENT: topics.payments, Side.LEDGER: topics.ledger}
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    started = time.monotonic()
    for n, record in enumerate(sim.records, 1):
        while True:
            try:
                producer.produce(
                    names[record.side],
                    key=record.key,
                    value=encode_value(record, fmt),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
        if rate > 0 and n % 100 == 0:
            ahead = n / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        producer.poll(0)
    beats = 0
    if flush_heartbeats:
        producer.flush(60)
        for partition in range(partitions):
            for topic in names.values():
                producer.produce(
                    topic,
                    value=heartbeat(sim.flush_time_ms, fmt),
                    partition=partition,
                    on_delivery=on_delivery,
                )
                beats += 1
    remaining = producer.flush(120)
    if remaining or errors:
        raise RuntimeError(f"produce failed: {remaining} undelivered, errors {errors[:3]}")
    return ProduceStats(len(sim.records), beats, time.monotonic() - started)

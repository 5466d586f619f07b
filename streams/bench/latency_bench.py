"""Match latency with real-time inputs: the price of event-time ordering, measured.

Produces a payment and its ledger entry for a new reference every few milliseconds with event
time = the wall clock (the ledger 0-200 ms after its payment), for a while, through one worker.
For every match, latency = when the match was read from recon.matched minus ``matched_at`` (the
event time of the record that closed it). Event-time ordering predicts about
``allowed_lateness`` plus batching; the run prints percentiles for each lateness given.

    python -m streams.bench.latency_bench [--lateness 1000 5000] [--seconds 20] [--rate 200]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from dataclasses import replace
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.contract.codec import decode_match
from streams.engine.config import MatchConfig
from streams.pipeline import pipeline
from streams.settings import database_url_from_env
from streams.simulate.produce import producer_config
from streams.worker.settings import WorkerSettings, worker_from_env


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _produce(settings: WorkerSettings, seconds: float, rate: float, stop: threading.Event) -> int:
    producer = Producer({**producer_config(settings.kafka), "linger.ms": 1})
    rng = random.Random(1)
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds and not stop.is_set():
        ref = f"LAT-{sent:07d}"
        now = _now_ms()
        base = {"reference": ref, "amount_minor": 1000 + sent, "currency": "EUR"}
        producer.produce(
            settings.topics.payments,
            key=ref.encode(),
            value=orjson.dumps(
                {**base, "event_id": f"{ref}-p", "event_time": now, "kind": "payment"}
            ),
        )
        producer.produce(
            settings.topics.ledger,
            key=ref.encode(),
            value=orjson.dumps(
                {
                    **base,
                    "event_id": f"{ref}-l",
                    "event_time": now + rng.randint(0, 200),
                    "direction": "credit",
                }
            ),
        )
        sent += 1
        producer.poll(0)
        time.sleep(max(0.0, sent / rate - (time.monotonic() - t0)))
    # Keep both inputs moving past the last pairs, as live traffic would.
    end = time.monotonic() + 15
    while time.monotonic() < end and not stop.is_set():
        for topic in (settings.topics.payments, settings.topics.ledger):
            for p in range(settings.partitions):
                producer.produce(topic, value=orjson.dumps({"event_time": _now_ms()}), partition=p)
        producer.poll(0)
        time.sleep(0.2)
    producer.flush(30)
    return sent


def _measure(base: WorkerSettings, lateness_ms: int, seconds: float, rate: float) -> None:
    config = replace(base.match, allowed_lateness_ms=lateness_ms)
    settings = replace(base, match=config, partitions=3, batch_within_ms=50)
    with pipeline(settings, database_url_from_env(), Path(".local/bench"), "recon_bench") as pipe:
        pipe.worker()
        consumer = Consumer(
            {
                **pipe.settings.kafka.confluent_config(),
                "group.id": "latency",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(pipe.settings.topics.matched, p, 0) for p in range(3)])
        stop = threading.Event()
        sent: list[int] = []
        thread = threading.Thread(
            target=lambda: sent.append(_produce(pipe.settings, seconds, rate, stop))
        )
        thread.start()
        latencies: list[int] = []
        deadline = time.monotonic() + seconds + 40
        while time.monotonic() < deadline and (
            thread.is_alive() or len(latencies) < (sent[0] if sent else 1)
        ):
            for msg in consumer.consume(1000, 0.2):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                received = _now_ms()
                latencies.append(received - decode_match(value).matched_at_ms)
        stop.set()
        thread.join()
        consumer.close()
    latencies.sort()

    def pick(q: float) -> int:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    print(
        f"allowed_lateness {lateness_ms} ms: {len(latencies)}/{sent[0] if sent else 0} pairs matched; "
        f"latency after the closing event p50 {pick(0.5)} ms, p95 {pick(0.95)} ms, p99 {pick(0.99)} ms, max {latencies[-1]} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--lateness", type=int, nargs="+", default=[1000, 5000], help="allowed lateness values (ms)"
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=200, help="pairs per second")
    args = parser.parse_args()
    base = replace(worker_from_env(), match=MatchConfig())
    for lateness in args.lateness:
        _measure(base, lateness, args.seconds, args.rate)


if __name__ == "__main__":
    main()

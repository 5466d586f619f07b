"""Match latency with real-time inputs: the price of event-time ordering, measured.

Produces a payment and its ledger entry for a new reference at a steady rate, with event time =
the wall clock at which the pair is produced (the payment 0-200 ms earlier), through one worker.
Event-time ordering predicts a latency of about ``allowed_lateness`` plus batching; the run
prints percentiles for each lateness given, of:

* ``--to kafka``: when the match was read from recon.matched, minus ``matched_at`` (the event
  time of the closing record, which is when it was produced);
* ``--to postgres`` (what ``bench/suite.py`` reports): when the match's row was committed in
  PostgreSQL by the sink, minus when the closing record was produced. The commit time comes
  from the row itself: the run's throw-away schema sets ``recon_matches.written_at`` to
  ``clock_timestamp()`` (the sink's default is ``now()``, the start of its transaction), so it
  is the moment the row was inserted, a few ms before its transaction commits. Reading rows
  with a poller instead would add the poll interval to every sample.

    python bench/latency_bench.py [--lateness 1000 5000] [--seconds 20] [--rate 200]
        [--to kafka|postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.postgres.migrate import migrate
from streams.contract.codec import decode_match
from streams.engine.config import MatchConfig
from streams.local_runner import Pipeline, free_port, pipeline
from streams.settings import database_url_from_env
from streams.simulate.produce import producer_config
from streams.worker.settings import WorkerSettings, worker_from_env

PREFIX = "LAT-"


def _now_ms() -> float:
    return time.time_ns() / 1e6


@dataclass(slots=True)
class PairProducer:
    """Produces pairs at ``rate`` per second in a thread until stopped; ``produced[i]`` is the
    wall-clock ms at which pair ``i``'s closing record (the ledger entry) was produced."""

    settings: WorkerSettings
    rate: float
    produced: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> PairProducer:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)

    def _run(self) -> None:
        producer = Producer({**producer_config(self.settings.kafka), "linger.ms": 1})
        topics = self.settings.topics
        rng = random.Random(1)
        t0 = time.monotonic()
        # Pairs go out in ticks of a few ms, not one sleep per pair: at 6k pairs/s a sleep and a
        # wake-up per pair cost this load generator more CPU than the 2-core machine can spare
        # beside the worker, the sink and the broker (producers run elsewhere in production).
        while not self.stop.is_set():
            due = int((time.monotonic() - t0) * self.rate) + 1
            for n in range(len(self.produced), due):
                ref = f"{PREFIX}{n:08d}"
                now = int(_now_ms())
                base = {"reference": ref, "amount_minor": 1000 + n, "currency": "EUR"}
                payment = {
                    **base,
                    "event_id": f"{ref}-p",
                    "event_time": now - rng.randint(0, 200),
                    "kind": "payment",
                }
                ledger = {**base, "event_id": f"{ref}-l", "event_time": now, "direction": "credit"}
                producer.produce(topics.payments, key=ref.encode(), value=orjson.dumps(payment))
                producer.produce(topics.ledger, key=ref.encode(), value=orjson.dumps(ledger))
                self.produced.append(_now_ms())
            producer.poll(0)
            time.sleep(0.005)
        producer.flush(30)


@dataclass(frozen=True, slots=True)
class Latencies:
    lateness_ms: int
    rate: float  # pairs per second
    sent: int  # pairs produced in the measured window
    samples: list[float]  # ms beyond allowed_lateness, sorted

    def pct(self, q: float) -> float:
        s = self.samples
        return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def measure_to_postgres(
    base: WorkerSettings,
    lateness_ms: int,
    seconds: float,
    rate: float,
    *,
    database_url: str,
    work_root: Path = Path(".local/bench"),
    schema: str = "recon_bench_latency",
    progress: Callable[[float], object] | None = None,
) -> Latencies:
    """Latency from a pair's closing record produced to its match row in PostgreSQL, minus
    ``lateness_ms``, over the pairs produced in a window of ``seconds`` at ``rate`` pairs/s."""
    settings = replace(base, match=replace(base.match, allowed_lateness_ms=lateness_ms))
    with pipeline(settings, database_url, work_root, schema) as pipe, pipe.pg() as conn:
        # Before the sink starts (it finds them applied): see the module docstring.
        migrate(conn, schema)
        conn.execute(
            "ALTER TABLE recon_matches ALTER COLUMN written_at SET DEFAULT clock_timestamp()"
        )
        pipe.worker()
        pipe.sink()

        def rows() -> int:
            _check_alive(pipe)
            try:
                found = conn.execute("SELECT count(*) FROM recon_matches").fetchone()
            except psycopg.errors.UndefinedTable:
                return 0
            return int(str(found[0])) if found else 0

        pairs = PairProducer(pipe.settings, rate)
        start, end = _window(pairs, time.sleep, lambda: rows() > 0, seconds, lateness_ms, progress)
        _wait(lambda: rows() >= end, 60 + lateness_ms / 1000, "match rows in PostgreSQL")
        written = conn.execute(
            "SELECT reference, extract(epoch FROM written_at) * 1000 FROM recon_matches"
            " WHERE reference LIKE %s",
            [PREFIX + "%"],
        ).fetchall()
    arrived = {int(str(ref)[len(PREFIX) :]): float(str(ms)) for ref, ms in written}
    return _latencies(pairs, arrived, start, end, lateness_ms)


def measure_to_kafka(
    base: WorkerSettings, lateness_ms: int, seconds: float, rate: float
) -> Latencies:
    """Latency from a pair's closing record produced to its match read from recon.matched
    (read_committed, as the sink reads), minus ``lateness_ms``."""
    settings = replace(base, match=replace(base.match, allowed_lateness_ms=lateness_ms))
    with pipeline(settings, database_url_from_env(), Path(".local/bench"), "recon_bench") as pipe:
        pipe.worker()
        consumer = Consumer(
            {
                **pipe.settings.kafka.confluent_config(),
                "group.id": "latency",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        matched = pipe.settings.topics.matched
        consumer.assign([TopicPartition(matched, p, 0) for p in range(settings.partitions)])
        arrived: dict[int, float] = {}

        def pump(seconds: float) -> None:
            until = time.monotonic() + seconds
            while True:
                for msg in consumer.consume(1000, max(0.0, min(0.1, until - time.monotonic()))):
                    value = msg.value()
                    if msg.error() is None and value is not None:
                        n = int(decode_match(value).reference[len(PREFIX) :])
                        arrived[n] = _now_ms()
                if time.monotonic() >= until:
                    return

        pairs = PairProducer(pipe.settings, rate)
        start, end = _window(pairs, pump, lambda: bool(arrived), seconds, lateness_ms, None)

        def window_matched() -> bool:
            pump(0.1)
            return all(n in arrived for n in range(start, end))

        _wait(window_matched, 30 + lateness_ms / 1000, "matches on recon.matched")
        consumer.close()
    return _latencies(pairs, arrived, start, end, lateness_ms)


def _window(
    pairs: PairProducer,
    pump: Callable[[float], object],
    ready: Callable[[], bool],
    seconds: float,
    lateness_ms: int,
    progress: Callable[[float], object] | None,
) -> tuple[int, int]:
    """Produce pairs; the measured ones are those produced in a window of ``seconds`` that
    starts once a first match has arrived (so group joins and the first restore are behind).
    Pairs keep coming for the lateness after it, so the window's last pairs are released like
    the others, as live traffic would release them. Returns the window's pair range."""
    pairs.start()
    try:
        _wait(lambda: ready() or bool(pump(0.1)), 120, "a first match")
        start = len(pairs.produced)
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            pump(min(0.2, left))
            if progress is not None:
                progress(seconds - max(0.0, until - time.monotonic()))
        end = len(pairs.produced)
        pump(lateness_ms / 1000 + 1.0)
    finally:
        pairs.finish()
    return start, end


def _wait(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout_s:.0f}s")
        time.sleep(0.05)


def _check_alive(pipe: Pipeline) -> None:
    for proc in pipe.processes:
        if proc.proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited; see {proc.log_path}")


def _latencies(
    pairs: PairProducer, arrived: dict[int, float], start: int, end: int, lateness_ms: int
) -> Latencies:
    timeline = [
        arrived[n] - pairs.produced[n] - lateness_ms for n in range(start, end) if n in arrived
    ]
    if os.environ.get("RECON_BENCH_TIMELINE"):  # latency over the window, in tenths
        tenth = max(1, len(timeline) // 10)
        print(
            "latency by tenth of the window (max ms): "
            + ", ".join(
                f"{max(timeline[i : i + tenth]):.0f}" for i in range(0, len(timeline), tenth)
            )
        )
    return Latencies(lateness_ms, pairs.rate, end - start, sorted(timeline))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--lateness", type=int, nargs="+", default=[1000, 5000], help="allowed lateness values (ms)"
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=200, help="pairs per second")
    parser.add_argument("--to", choices=("kafka", "postgres"), default="kafka")
    args = parser.parse_args()
    base = replace(
        worker_from_env(),
        match=MatchConfig(),
        partitions=3,
        batch_within_ms=50,
        web_port=free_port(),
    )
    for lateness in args.lateness:
        if args.to == "kafka":
            lat = measure_to_kafka(base, lateness, args.seconds, args.rate)
        else:
            lat = measure_to_postgres(
                base, lateness, args.seconds, args.rate, database_url=database_url_from_env()
            )
        print(
            f"allowed_lateness {lateness} ms, to {args.to}: {len(lat.samples)}/{lat.sent} pairs; "
            f"beyond the lateness: p50 {lat.pct(0.5):.0f} ms, p95 {lat.pct(0.95):.0f} ms, "
            f"p99 {lat.pct(0.99):.0f} ms, max {lat.pct(1.0):.0f} ms"
        )


if __name__ == "__main__":
    main()

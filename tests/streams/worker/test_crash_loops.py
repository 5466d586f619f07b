"""Inputs that used to stop the worker for good or poison a partition, on the real broker.

Each test sends the offending input among ordinary traffic and checks: the worker never exits,
the offending input gets its documented outcome, everything else equals the ground truth, and
a restart afterwards reproduces no failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from streams.contract.model import ExceptionKind
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import worker_metric
from streams.simulate.produce import produce, producer_config
from streams.simulate.scenarios import START_MS, simulate
from streams.simulate.truth import check, truth_of
from streams.worker.settings import WorkerSettings
from streams.worker.topics import create_topics, topic_names
from tests.streams.worker.harness import (
    TEST_MATCH,
    OutputReader,
    Outputs,
    WorkerProcess,
    unique_worker_settings,
)

StartWorker = Callable[..., WorkerProcess]
MAX = 2**63 - 1
T0 = START_MS
# The simulator's mix as bench/worker_bench.py runs it: its seed and tolerances.
BENCH_CONFIG = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10)
BENCH_SEED = 5


def _producer(settings: WorkerSettings) -> Producer:
    # Large enough for a value just under the broker's 1 MiB limit.
    return Producer({**producer_config(settings.kafka), "message.max.bytes": 1_048_576})


def _payment(ref: str, eid: str, amount: int, t: int) -> bytes:
    return orjson.dumps(
        {"event_id": eid, "reference": ref, "amount_minor": amount, "currency": "EUR",
         "event_time": t, "kind": "payment"}
    )  # fmt: skip


def _ledger(ref: str, eid: str, amount: int, t: int) -> bytes:
    return orjson.dumps(
        {"event_id": eid, "reference": ref, "amount_minor": amount, "currency": "EUR",
         "event_time": t, "direction": "credit"}
    )  # fmt: skip


def _heartbeats(producer: Producer, settings: WorkerSettings, t: int) -> None:
    for partition in range(settings.partitions):
        for topic in (settings.topics.payments, settings.topics.ledger):
            producer.produce(topic, value=orjson.dumps({"event_time": t}), partition=partition)


def _rss_peak_mb(worker: WorkerProcess) -> float:
    assert worker.proc is not None
    with open(f"/proc/{worker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _alive(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    assert worker.proc.poll() is None, f"worker exited with {worker.proc.returncode}"


def _restart_processes_a_pair(
    worker: WorkerProcess, start_worker: StartWorker, settings: WorkerSettings,
    outputs: OutputReader, name: str,
) -> None:  # fmt: skip
    """Stop and start the worker on the same data dir; it must come up and match a new pair."""
    worker.stop()
    assert worker.proc is not None
    assert worker.proc.returncode == 0
    again = start_worker(name, data_dir=worker.data_dir)
    producer = _producer(settings)
    ref = "AFTER-RESTART"
    late = T0 + 1000 * HOUR_MS
    producer.produce(settings.topics.payments, key=ref.encode(), value=_payment(ref, "pr", 5, late))
    producer.produce(settings.topics.ledger, key=ref.encode(), value=_ledger(ref, "lr", 5, late))
    _heartbeats(producer, settings, late + 10 * HOUR_MS)
    assert producer.flush(30) == 0
    out = outputs.read_until(lambda o: any(m.reference == ref for m in o.matches), timeout=90)
    assert any(m.reference == ref for m in out.matches), again.tail()
    _alive(again)


def _rate_of(
    port: int, metric: str, count: int, *, timeout: float, since: float | None = None
) -> float:
    """Per second, of a worker counter reaching ``count``: from ``since``, or from the first
    input record the worker took (its first batch begun, not done)."""
    deadline = time.monotonic() + timeout
    first = since
    while (value := worker_metric(port, metric)) < count:
        assert time.monotonic() < deadline, (metric, value, count)
        if first is None and worker_metric(port, "recon_records_in_total") > 0:
            first = time.perf_counter()
        time.sleep(0.02)
    assert first is not None
    return count / max(time.perf_counter() - first, 0.05)


def _steady_throughput(settings: WorkerSettings, tmp_path: Path, count: int) -> float:
    """A worker's records/s on ``count`` records of the simulator's realistic mix (the
    bench's: 3 partitions, seed 5), in the same test run, on topics of its own: the same
    scale as the backlog, since a worker is faster while its state is small."""
    mix = unique_worker_settings(settings.kafka, replace(settings, match=BENCH_CONFIG))
    create_topics(mix)
    worker = WorkerProcess(mix, tmp_path / "steady", tmp_path / "steady.log").start()
    try:
        sim = simulate(count, seed=BENCH_SEED, config=BENCH_CONFIG)
        produce(sim, mix.kafka, mix.topics, mix.partitions)
        total = len(sim.records) + 2 * mix.partitions
        return _rate_of(worker.port, "recon_batch_records_sum", total, timeout=300)
    finally:
        worker.stop()
        admin = AdminClient(mix.kafka.confluent_config())
        for future in admin.delete_topics(topic_names(mix), operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def test_released_backlog_of_100k_payments_goes_out_in_bounded_transactions(
    worker_settings: WorkerSettings,
    start_worker: StartWorker,
    outputs: OutputReader,
    tmp_path: Path,
) -> None:
    """Also: the release goes out at no less than half the worker's steady throughput."""
    worker = start_worker("w1")
    producer = _producer(worker_settings)
    count = int(os.environ.get("RECON_TEST_BACKLOG", "100000"))  # 1000000 for the 1M release
    for i in range(count):
        ref = f"BACKLOG-{i}"
        value = _payment(ref, f"bp{i}", 100 + i, T0 + i)
        while True:
            try:
                producer.produce(worker_settings.topics.payments, key=ref.encode(), value=value)
                break
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.1)
    assert producer.flush(120) == 0
    _rate_of(worker.port, "recon_batch_records_sum", count, timeout=max(600, count / 500))
    # Heartbeats per partition past every deadline, the ledger's the last: that one watermark
    # step per partition releases a third of the backlog and fires a third of the deadlines.
    beyond = T0 + count + TEST_MATCH.match_window_ms + 10 * HOUR_MS
    released_from = time.perf_counter()
    for topic in (worker_settings.topics.payments, worker_settings.topics.ledger):
        for partition in range(worker_settings.partitions):
            producer.produce(topic, value=orjson.dumps({"event_time": beyond}), partition=partition)
        assert producer.flush(30) == 0
    release = _rate_of(
        worker.port, "recon_exceptions_total", count, timeout=max(600, count / 500),
        since=released_from,
    )  # fmt: skip
    steady = _steady_throughput(worker_settings, tmp_path, count)
    print(f"steady {steady:,.0f} records/s, release {release:,.0f} exceptions/s")
    # Issue 10: a 1M backlog goes out at no less than half the steady throughput (measured
    # 0.5-0.7 on a 2-core machine). The default 100k run, on a busy CI machine, guards
    # against a regression with room for its noise.
    assert release >= (0.5 if count >= 1_000_000 else 0.35) * steady, (release, steady)

    def done(o: Outputs) -> bool:
        return len(o.exceptions) >= count

    out = outputs.read_until(done, timeout=max(600, count / 500))
    out = outputs.settle(quiet=3)
    _alive(worker)
    kinds = {e.kind for e in out.exceptions}
    assert kinds == {ExceptionKind.MISSING_LEDGER}
    by_payment = {e.payment_event_ids for e in out.exceptions}
    assert by_payment == {(f"bp{i}",) for i in range(count)}
    assert len({e.exception_id for e in out.exceptions}) == count
    for e in out.exceptions[:: count // 50]:
        i = int(e.payment_event_ids[0][2:])
        assert e.payment_amount_minor == 100 + i
        assert e.raised_at_ms == T0 + i + TEST_MATCH.match_window_ms
    # Bounded memory: the whole release never sits in memory (it peaked at 1.34 GB for 1M).
    peak = _rss_peak_mb(worker)
    print(f"worker peak RSS {peak:.0f} MB for a {count}-payment release")
    assert peak < 350, peak
    _restart_processes_a_pair(worker, start_worker, worker_settings, outputs, "w2")


def test_oversized_invalid_inputs_are_dead_lettered_with_a_bounded_prefix(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    worker = start_worker("w1")
    producer = _producer(worker_settings)
    t = worker_settings.topics
    big_value = b"{" + b"x" * 999_999
    big_key = b"K" * 900_000
    producer.produce(t.payments, key=b"BIG-1", value=big_value)
    producer.produce(t.ledger, key=big_key, value=b"[]")
    for ref in ("OK-1", "OK-2"):
        producer.produce(t.payments, key=ref.encode(), value=_payment(ref, f"p-{ref}", 7, T0))
        producer.produce(t.ledger, key=ref.encode(), value=_ledger(ref, f"l-{ref}", 7, T0 + 1))
    _heartbeats(producer, worker_settings, T0 + 10 * HOUR_MS)
    assert producer.flush(60) == 0
    out = outputs.read_until(lambda o: len(o.dead_letters) >= 2 and len(o.matches) >= 2)
    _alive(worker)
    assert sorted(m.reference for m in out.matches) == ["OK-1", "OK-2"]
    by_reason = {d.reason: d for d in out.dead_letters}
    assert set(by_reason) == {"BAD_JSON"}
    big = next(d for d in out.dead_letters if d.key == b"BIG-1")
    assert big.value is not None
    assert len(big.value) < 100_000
    assert big_value.startswith(big.value)
    assert big.value_size == len(big_value)
    assert big.value_sha256 == hashlib.sha256(big_value).hexdigest()
    other = next(d for d in out.dead_letters if d.source_topic == t.ledger)
    assert other.key is not None
    assert big_key.startswith(other.key)
    assert len(other.key) < 100_000
    assert other.key_size == len(big_key)
    _restart_processes_a_pair(worker, start_worker, worker_settings, outputs, "w2")


def test_sums_beyond_64_bits_are_amount_overflow_exceptions(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    worker = start_worker("w1")
    producer = _producer(worker_settings)
    t = worker_settings.topics
    for ref, n in (("MAX-2", 2), ("MAX-3", 3)):
        for k in range(n):
            value = _payment(ref, f"{ref}-p{k}", MAX, T0 + k)
            producer.produce(t.payments, key=ref.encode(), value=value)
    producer.produce(t.payments, key=b"SMALL", value=_payment("SMALL", "s-p", 10, T0))
    producer.produce(t.ledger, key=b"SMALL", value=_ledger("SMALL", "s-l", 10, T0))
    _heartbeats(producer, worker_settings, T0 + 10 * HOUR_MS)
    assert producer.flush(60) == 0
    out = outputs.read_until(lambda o: len(o.exceptions) >= 5 and len(o.matches) >= 1)
    out = outputs.settle()
    _alive(worker)
    got = sorted(
        (e.kind.value, e.payment_event_ids, e.payment_amount_minor) for e in out.exceptions
    )
    assert got == [
        ("AMOUNT_OVERFLOW", ("MAX-2-p1",), MAX),
        ("AMOUNT_OVERFLOW", ("MAX-3-p1",), MAX),
        ("AMOUNT_OVERFLOW", ("MAX-3-p2",), MAX),
        ("MISSING_LEDGER", ("MAX-2-p0",), MAX),
        ("MISSING_LEDGER", ("MAX-3-p0",), MAX),
    ]
    assert [m.reference for m in out.matches] == ["SMALL"]
    _restart_processes_a_pair(worker, start_worker, worker_settings, outputs, "w2")


def test_far_future_pair_cannot_drag_the_watermark(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    worker = start_worker("w1")
    sim = simulate(2000, seed=23, config=TEST_MATCH)
    truth = truth_of(sim)
    producer = _producer(worker_settings)
    t = worker_settings.topics
    far = 253402300797999  # 9999-12-31
    ref = "FUTURE-1"
    half = len(sim.records) // 2
    # Mid-stream: a valid pair dated in the year 9999, between the two halves of the traffic.
    head = replace(sim, records=sim.records[:half])
    produce(head, worker_settings.kafka, t, worker_settings.partitions, flush_heartbeats=False)
    producer.produce(t.payments, key=ref.encode(), value=_payment(ref, "fp", 100, far))
    producer.produce(t.ledger, key=ref.encode(), value=_ledger(ref, "fl", 100, far))
    assert producer.flush(30) == 0
    tail = replace(sim, records=sim.records[half:])
    produce(tail, worker_settings.kafka, t, worker_settings.partitions)

    def complete(o: Outputs) -> bool:
        return len({m.match_id for m in o.matches}) >= len(truth.matches) and len(
            {e.exception_id for e in o.exceptions}
        ) >= len(truth.exceptions)

    out = outputs.read_until(complete, timeout=180)
    out = outputs.settle()
    _alive(worker)
    future = [d for d in out.dead_letters if d.key == ref.encode()]
    assert sorted((d.source_topic, d.reason) for d in future) == [
        (t.ledger, "BAD_EVENT_TIME"),
        (t.payments, "BAD_EVENT_TIME"),
    ]
    others = [d for d in out.dead_letters if d.key != ref.encode()]
    verdict = check(truth, out.matches, out.exceptions, others)
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.matches == len(truth.matches)
    _restart_processes_a_pair(worker, start_worker, worker_settings, outputs, "w2")


def test_nul_in_reference_or_event_id_is_rejected_at_the_worker(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    worker = start_worker("w1")
    producer = _producer(worker_settings)
    t = worker_settings.topics
    nul_ref = "NUL\x00REF"
    producer.produce(t.payments, key=nul_ref.encode(), value=_payment(nul_ref, "n1", 5, T0))
    producer.produce(t.payments, key=b"NULID", value=_payment("NULID", "id\x00x", 5, T0))
    producer.produce(t.payments, key=b"FINE", value=_payment("FINE", "f1", 5, T0))
    producer.produce(t.ledger, key=b"FINE", value=_ledger("FINE", "f2", 5, T0))
    _heartbeats(producer, worker_settings, T0 + 10 * HOUR_MS)
    assert producer.flush(30) == 0
    out = outputs.read_until(lambda o: len(o.dead_letters) >= 2 and len(o.matches) >= 1)
    _alive(worker)
    reasons = sorted((d.key, d.reason) for d in out.dead_letters)
    assert reasons == [(nul_ref.encode(), "BAD_REFERENCE"), (b"NULID", "BAD_VALUE")]
    assert [m.reference for m in out.matches] == ["FINE"]
    _restart_processes_a_pair(worker, start_worker, worker_settings, outputs, "w2")

"""Graceful stops (SIGTERM, scale-in) at every point of the batch cycle lose nothing.

Worker A runs throughout. Worker B joins again and again under load (a rebalance 1 -> 2) and
SIGTERMs itself when its second batch reaches a given point (after fetch, after the engine,
after send, after commit, before ack), so Faust's shutdown lands exactly there; A takes its
partitions back (2 -> 1). Afterwards every outcome equals the simulator's ground truth.

Before the fix, a stop that landed while a batch was being fetched or restored let Faust's take
buffer ack the batch without it being applied: its records were silently lost.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import orjson
from confluent_kafka import Consumer, TopicPartition

from streams.local_runner import worker_metric
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import Truth, check, truth_of
from streams.worker.settings import WorkerSettings
from streams.worker.stop_points import POINTS
from tests.streams.worker.harness import TEST_MATCH, OutputReader, Outputs, WorkerProcess

StartWorker = Callable[..., WorkerProcess]
# Two stops at each point by default (about 2 minutes); the fault suite's rebalance scenario
# adds 20 more transitions under load. RECON_TEST_STOPS=40 for a long run.
STOPS = int(os.environ.get("RECON_TEST_STOPS", str(2 * len(POINTS))))


def test_sigterm_at_every_point_of_the_batch_cycle_loses_nothing(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    start_worker("a")
    # About 16 s of traffic per stop: a stop takes about 12 s, more on a loaded machine.
    sim = simulate(30 * 16 * STOPS, seed=31, config=TEST_MATCH)
    truth = truth_of(sim)
    failures: list[BaseException] = []

    def traffic() -> None:
        try:
            produce(
                sim, worker_settings.kafka, worker_settings.topics,
                worker_settings.partitions, rate=30,
            )  # fmt: skip
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    producer = threading.Thread(target=traffic, daemon=True)
    producer.start()
    stopped_at: list[str] = []
    for i in range(STOPS):
        point = POINTS[i % len(POINTS)]
        b = start_worker(f"b{i}", RECON_FAULT_STOP_AT=f"{point}:2")
        assert b.proc is not None
        deadline = time.monotonic() + 90
        while b.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b.proc.returncode == 0, f"stop at {point}: exit {b.proc.returncode}\n{b.tail()}"
        log = b.log_path.read_text(errors="replace")
        assert f"fault injection: SIGTERM at {point}" in log, b.tail()
        stopped_at.append(point)
        assert producer.is_alive(), "traffic ended before the stops: raise the record count"
    producer.join(600)
    assert not failures, failures
    assert len(stopped_at) == STOPS
    assert set(stopped_at) == set(POINTS) or len(POINTS) > STOPS

    out = outputs.read_until(lambda o: _complete(truth, o), timeout=180)
    out = outputs.settle()
    verdict = check(truth, out.matches, out.exceptions, out.dead_letters)
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.matches == len(truth.matches)


def test_offsets_committed_past_unread_records_are_read_again(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    """What Faust's consumer does across a rebalance, made deterministic: the group's offsets
    move past records no worker read. The worker sees from its state that records are missing,
    reads them again and applies them: the outputs still equal the ground truth."""
    sim = simulate(2000, seed=37, config=TEST_MATCH)
    truth = truth_of(sim)
    half = len(sim.records) // 2
    t = worker_settings.topics
    w1 = start_worker("w1")
    produce(
        replace(sim, records=sim.records[:half]), worker_settings.kafka, t,
        worker_settings.partitions, flush_heartbeats=False,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while worker_metric(w1.port, "recon_records_in_total") < half:
        assert time.monotonic() < deadline, w1.tail()
        time.sleep(0.3)
    w1.stop()
    produce(replace(sim, records=sim.records[half:]), worker_settings.kafka, t,
            worker_settings.partitions, flush_heartbeats=False)  # fmt: skip
    # Move the group's committed offsets 5 records ahead on every input partition.
    group = Consumer(
        {**worker_settings.kafka.confluent_config(), "group.id": worker_settings.app_id}
    )
    tps = [TopicPartition(x, p) for x in (t.payments, t.ledger) for p in range(3)]
    committed = group.committed(tps, timeout=30)
    ahead = [TopicPartition(c.topic, c.partition, c.offset + 5) for c in committed]
    assert all(c.offset >= 0 for c in committed), committed
    group.commit(offsets=ahead, asynchronous=False)
    group.close()
    produce(replace(sim, records=[]), worker_settings.kafka, t, worker_settings.partitions)

    w2 = start_worker("w2", data_dir=w1.data_dir)
    out = outputs.read_until(lambda o: _complete(truth, o), timeout=180)
    out = outputs.settle()
    verdict = check(truth, out.matches, out.exceptions, out.dead_letters)
    assert verdict.ok, "\n".join(verdict.problems)
    assert worker_metric(w2.port, "recon_refetched_records_total") == 5 * len(tps)
    assert "the consumer skipped offsets" in w2.log_path.read_text()


def _complete(truth: Truth, out: Outputs) -> bool:
    resolved = {i for i, e in truth.exceptions.items() if e["status"] == "resolved"}
    return (
        truth.matches.keys() <= {m.match_id for m in out.matches}
        and truth.exceptions.keys() <= {e.exception_id for e in out.exceptions}
        and resolved <= {e.exception_id for e in out.exceptions if e.status.value == "resolved"}
    )


def test_kill_9_between_commit_and_ack_loses_nothing_and_adds_nothing(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    """A batch's input offsets are committed only after its transaction, and acked after:
    a crash between the two leaves the group's offsets before the batch, so it is delivered
    again; the state restored with the transaction marks its records applied, so the
    redelivery is skipped and adds no output."""
    sim = simulate(3000, seed=41, config=TEST_MATCH)
    truth = truth_of(sim)
    t = worker_settings.topics
    small = {"RECON_BATCH_MAX": "100", "RECON_BATCH_EVENTS": "2", "RECON_SESSION_TIMEOUT": "10s"}
    # Started before the records exist: it must be ready before its third batch kills it.
    w1 = start_worker("w1", RECON_FAULT_STOP_AT="after_commit:3:kill", **small)
    produce(sim, worker_settings.kafka, t, worker_settings.partitions)
    assert w1.proc is not None
    w1.proc.wait(120)
    assert w1.proc.returncode == -9, w1.tail()
    line = next(x for x in w1.log_path.read_text().splitlines() if "fault injection: SIGKILL" in x)
    message = str(orjson.loads(line)["message"])  # one JSON object per log line
    firsts: dict[str, int] = orjson.loads(message.split("its first offsets: ", 1)[1])
    assert firsts, line

    group = Consumer(
        {**worker_settings.kafka.confluent_config(), "group.id": worker_settings.app_id}
    )
    tps = [TopicPartition(x, p) for x in (t.payments, t.ledger) for p in range(3)]
    committed = {f"{c.topic}[{c.partition}]": c.offset for c in group.committed(tps, timeout=30)}
    group.close()
    for tp, first in firsts.items():
        # Before the batch: its records are delivered again (a negative offset: none yet).
        assert committed[tp] <= first, (tp, committed[tp], first)

    w2 = start_worker("w2", data_dir=w1.data_dir, **small)
    out = outputs.read_until(lambda o: _complete(truth, o), timeout=180)
    out = outputs.settle()
    verdict = check(truth, out.matches, out.exceptions, out.dead_letters)
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.matches == len(truth.matches)
    assert verdict.duplicate_records == 0  # the redelivered batch added nothing
    replays = worker_metric(w2.port, 'recon_engine_events_total{counter="replays"}')
    assert replays >= sum(1 for _ in firsts), replays

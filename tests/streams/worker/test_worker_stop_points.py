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

from worker_harness import OutputReader, Outputs, WorkerProcess

from conftest import TEST_MATCH
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import check, truth_of
from streams.worker.settings import WorkerSettings
from streams.worker.stop_points import POINTS

StartWorker = Callable[..., WorkerProcess]
STOPS = int(os.environ.get("RECON_TEST_STOPS", "20"))


def test_sigterm_at_every_point_of_the_batch_cycle_loses_nothing(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    start_worker("a")
    sim = simulate(30 * 12 * STOPS, seed=31, config=TEST_MATCH)
    truth = truth_of(sim)
    failures: list[BaseException] = []

    def traffic() -> None:
        try:  # about 12 s of traffic per stop
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
    assert len(stopped_at) >= 20 or len(stopped_at) == STOPS
    assert set(stopped_at) == set(POINTS) or len(POINTS) > STOPS

    resolved = {i for i, e in truth.exceptions.items() if e["status"] == "resolved"}

    def complete(out: Outputs) -> bool:
        return (
            truth.matches.keys() <= {m.match_id for m in out.matches}
            and truth.exceptions.keys() <= {e.exception_id for e in out.exceptions}
            and resolved <= {e.exception_id for e in out.exceptions if e.status.value == "resolved"}
        )

    out = outputs.read_until(complete, timeout=180)
    out = outputs.settle()
    verdict = check(truth, out.matches, out.exceptions, out.dead_letters)
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.matches == len(truth.matches)

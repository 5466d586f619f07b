"""Worker throughput on the real broker vs the same records in-process (ratio in one run).

Produces N simulated records (and the closing heartbeats) to fresh topics first, then starts one
worker and times it from the first input consumed to the last output committed to Kafka (see
:func:`time_worker`). The same records then run through the worker's batch processor
in-process, over memory stores, for the ratio.

    python -m streams.bench.worker_bench [--count 100000] [--partitions 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streams.engine.config import MatchConfig
from streams.pipeline import Process, free_port, pipeline, worker_metric
from streams.settings import TopicNames, database_url_from_env
from streams.simulate.local import run_local
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import check, truth_of
from streams.worker.settings import worker_from_env

# The simulation every throughput figure is measured on (the limit's too).
BENCH_CONFIG = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10)
BENCH_SEED = 5


@dataclass(frozen=True, slots=True)
class WorkerRun:
    records: int  # input records the worker read
    seconds: float  # first input consumed -> last output committed
    matches: int

    @property
    def rps(self) -> float:
        return self.records / self.seconds


def time_worker(
    worker: Process,
    total: int,
    *,
    timeout_s: float = 900,
    poll_s: float = 0.05,
    progress: Callable[[int], object] | None = None,
) -> WorkerRun:
    """Time a started worker over ``total`` input records already in its topics.

    From its /metrics: ``recon_records_in_total`` counts a batch's records when the agent
    receives it (the first input consumed), ``recon_batch_records_sum`` when the batch is
    done, i.e. after the last of its Kafka transactions committed (the last output)."""
    port = int(worker.env["RECON_WEB_PORT"])
    deadline = time.monotonic() + timeout_s
    first: float | None = None
    done = 0.0
    while done < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker finished {done:,.0f} of {total:,} records")
        if worker.proc is not None and worker.proc.poll() is not None:
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        time.sleep(poll_s)
        now = time.perf_counter()
        if first is None and worker_metric(port, "recon_records_in_total") > 0:
            first = now
        done = worker_metric(port, "recon_batch_records_sum")
        if progress is not None:
            progress(int(done))
    end = time.perf_counter()
    assert first is not None
    matches = int(worker_metric(port, "recon_matches_total"))
    # A run shorter than one poll still gets a positive duration.
    return WorkerRun(int(done), max(end - first, poll_s), matches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    config = BENCH_CONFIG
    sim = simulate(args.count, seed=BENCH_SEED, config=config)
    truth = truth_of(sim)
    total = len(sim.records) + 2 * args.partitions
    print(
        f"{len(sim.records)} records, {len(truth.matches)} expected matches, {args.partitions} partitions"
    )

    base = replace(
        worker_from_env(),
        match=config,
        partitions=args.partitions,
        batch_max=args.batch,
        web_port=free_port(),
    )
    with pipeline(base, database_url_from_env(), Path(".local/bench"), "recon_bench") as pipe:
        stats = produce(sim, pipe.settings.kafka, pipe.settings.topics, args.partitions)
        print(
            f"produced in {stats.seconds:.1f}s ({stats.records / stats.seconds:,.0f} records/s, confluent-kafka, murmur2)"
        )
        run = time_worker(pipe.worker(), total)
    print(
        f"worker (Faust, RocksDB, real broker): {run.records:,} records in {run.seconds:.1f}s = {run.rps:,.0f} records/s; {run.matches:,} matches (expected {len(truth.matches):,})"
    )

    t1 = time.monotonic()
    local = run_local(
        sim, config, partitions=args.partitions, batch=args.batch, topics=TopicNames()
    )
    local_s = time.monotonic() - t1
    verdict = check(truth, local.matches, local.exceptions, local.dead_letters)
    print(
        f"in-process (decode + engine, memory store): {total / local_s:,.0f} records/s, ground truth {'OK' if verdict.ok else 'FAIL'}"
    )
    print(f"ratio worker / in-process: {local_s / run.seconds:.2f}")


if __name__ == "__main__":
    main()

"""Worker throughput on the real broker vs the same records in-process (ratio in one run).

Produces N simulated records (and the closing heartbeats) to fresh topics first, then starts one
worker and times it from the first input consumed to the last output committed to Kafka (see
:func:`time_worker`). The same records then run through the worker's batch processor
in-process, over memory stores, for the ratio.

    python bench/worker_bench.py [--count 100000] [--partitions 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streams.engine.config import MatchConfig
from streams.local_runner import Process, free_port, pipeline, worker_metric
from streams.settings import TopicNames, database_url_from_env
from streams.simulate.local import run_local
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import check, truth_of
from streams.worker.settings import WorkerSettings, worker_from_env

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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (librdkafka's and RocksDB's threads are named)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = name.split("#")[0].rstrip("0123456789:/") or name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _py_spy(pid: int, path: str) -> subprocess.Popen[bytes]:
    spy = str(Path(sys.executable).with_name("py-spy"))
    argv = [spy, "record", "-p", str(pid), "-o", path, "--format", "raw", "-r", "200"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch", type=int, default=WorkerSettings().batch_max)
    parser.add_argument(
        "--profile", metavar="PATH", help="py-spy the worker while it runs (collapsed stacks)"
    )
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
        worker = pipe.worker()
        port = int(worker.env["RECON_WEB_PORT"])
        spy = _py_spy(worker.pid, args.profile) if args.profile else None
        cpu0 = _cpu_seconds(worker.pid)
        run = time_worker(worker, total)
        cpu_s = _cpu_seconds(worker.pid) - cpu0
        threads = _thread_cpu(worker.pid)
        batches = worker_metric(port, "recon_batch_seconds_count")
        in_batches = worker_metric(port, "recon_batch_seconds_sum")
        chunks = worker_metric(port, "recon_transactions_total")
        committing = worker_metric(port, "recon_transaction_commit_seconds_sum")
        applying = worker_metric(port, "recon_state_apply_seconds_sum")
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(60)
    print(
        f"worker (Faust, RocksDB, real broker): {run.records:,} records in {run.seconds:.1f}s = {run.rps:,.0f} records/s; {run.matches:,} matches (expected {len(truth.matches):,})"
    )

    top = sorted(threads.items(), key=lambda kv: -kv[1])[:6]
    print("worker threads (CPU s since start): " + ", ".join(f"{n} {s:.1f}" for n, s in top))
    print(
        f"worker batches: {batches:,.0f} ({run.records / max(batches, 1):,.0f} records each, {chunks:,.0f} transactions), {in_batches:.1f}s in batches, {committing:.1f}s of it committing, {applying:.1f}s writing RocksDB\n"
        f"worker CPU: {cpu_s:.1f}s over {run.seconds:.1f}s ({cpu_s / run.seconds:.0%} of a core), {run.records / cpu_s:,.0f} records per CPU second"
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

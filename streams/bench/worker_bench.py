"""Worker throughput on the real broker vs the same records in-process (ratio in one run).

Produces N simulated records (and the closing heartbeats) to fresh topics first, then starts one
worker and times it from ready until it has read every record. The same records then run through
the worker's batch processor in-process, over memory stores, for the ratio.

    python -m streams.bench.worker_bench [--count 100000] [--partitions 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from streams.engine.config import MatchConfig
from streams.pipeline import pipeline, worker_metric
from streams.settings import TopicNames, database_url_from_env
from streams.simulate.local import run_local
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import check, truth_of
from streams.worker.settings import worker_from_env


def _metrics(port: int) -> tuple[float, float]:
    return worker_metric(port, "recon_records_in_total"), worker_metric(port, "recon_matches_total")


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
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument(
        "--profile", metavar="PATH", help="py-spy the worker while it runs (collapsed stacks)"
    )
    args = parser.parse_args()

    config = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10)
    sim = simulate(args.count, seed=5, config=config)
    truth = truth_of(sim)
    total = len(sim.records) + 2 * args.partitions
    print(
        f"{len(sim.records)} records, {len(truth.matches)} expected matches, {args.partitions} partitions"
    )

    base = replace(
        worker_from_env(), match=config, partitions=args.partitions, batch_max=args.batch
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
        t0 = time.monotonic()
        seen, matches = 0.0, 0.0
        # Until every record is read and every match is out (the last batch's release too).
        while (seen < total or matches < len(truth.matches)) and time.monotonic() - t0 < 900:
            time.sleep(0.5)
            seen, matches = _metrics(port)
        worker_s = time.monotonic() - t0
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
        f"worker (Faust, RocksDB, real broker): {seen:,.0f} records in {worker_s:.1f}s = {seen / worker_s:,.0f} records/s; {matches:,.0f} matches"
    )

    top = sorted(threads.items(), key=lambda kv: -kv[1])[:6]
    print("worker threads (CPU s since start): " + ", ".join(f"{n} {s:.1f}" for n, s in top))
    print(
        f"worker batches: {batches:,.0f} ({seen / max(batches, 1):,.0f} records each, {chunks:,.0f} transactions), {in_batches:.1f}s in batches, {committing:.1f}s of it committing, {applying:.1f}s writing RocksDB\n"
        f"worker CPU: {cpu_s:.1f}s over {worker_s:.1f}s wall ({cpu_s / worker_s:.0%} of a core), {seen / cpu_s:,.0f} records per CPU second"
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
    print(f"ratio worker / in-process: {local_s / worker_s:.2f}")


if __name__ == "__main__":
    main()

"""`make bench`: every figure of issue 10 in one run, as a markdown table and bench/results.json.

    .venv/bin/python bench/suite.py [--quick] [--out bench/results.json] [--[no-]peers]

Runs on the broker and database of KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL, on fresh topics and
throw-away schemas. Phases, each on the same run's data:

1. throughput, on one simulation (seed 5, tolerance 5 minor / 10 bps, 3 partitions) produced
   once: the limit (bench/passthrough.py's raw pass-through of those records), one real worker
   (from its first input consumed to its last output committed to Kafka), the sink over the
   worker's recon.matched (from its first record read to its last row committed) against a
   raw binary COPY of the same rows into the same partitioned, indexed table, and the batch
   processor in-process over rocksdict;
2. latency through worker and sink to PostgreSQL at half the worker's measured records/s,
   beyond allowed_lateness (bench/latency_bench.py);
3. state (bench/state_bench.py): a real worker's peak RSS over N open groups built into
   its data dir, expiring 1% of them (also at a smaller N, to show the cost per expired group
   does not grow with the open ones), and the worker's restore of that state's changelog.

``--quick`` uses small counts (under 2 minutes on the 2-core machine); the keys are the same, and
the ``*_groups`` keys say which counts were measured. The full run also runs the
quix-streams peer (``bench/peers/``) on the same records (``--no-peers`` skips it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from tqdm import tqdm

from connectors.postgres.settings import sink_settings_from_env
from latency_bench import measure_to_postgres
from passthrough import create_topics, delete_topics, pass_through
from pipeline_bench import run_pipeline
from report import machine, markdown
from sink_bench import copy_rows, match_rows, read_topic, time_sink
from state_bench import build_open_groups, time_expiry, time_restore, worker_rss
from streams.engine.config import MatchConfig
from streams.local_runner import free_port, pipeline
from streams.settings import TopicNames, database_url_from_env
from streams.simulate.local import kafka_records
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import check, truth_of
from streams.worker.settings import WorkerSettings, worker_from_env
from worker_bench import BENCH_CONFIG, BENCH_SEED, time_worker

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "bench" / "peers" / "run_peer.py"


@dataclass(frozen=True, slots=True)
class Plan:
    records: int  # simulated input records of the throughput phase
    latency_s: float  # the latency window
    open_groups: tuple[int, int]  # the "1m" and "10m" state sizes
    expire_small: int  # one more, smaller, size for the expiry's cost per group
    traffic: int  # live records through the worker over the built state
    partitions: int = 3
    lateness_ms: int = 1000  # allowed_lateness of the latency phase


FULL = Plan(100_000, 20.0, (1_000_000, 10_000_000), 100_000, 20_000)
QUICK = Plan(20_000, 5.0, (50_000, 200_000), 10_000, 4_000)


# ---------------------------------------------------------------------------------- progress


def say(message: str) -> None:
    tqdm.write(f"[bench] {message}", file=sys.stderr)


@contextmanager
def bar(desc: str, total: float | None, unit: str = "rec") -> Iterator[Callable[[float], None]]:
    """A progress bar set to an absolute value (off when stderr is not a terminal)."""
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=None, leave=False) as b:

        def update(n: float) -> None:
            b.n = n
            b.refresh()

        yield update


# ---------------------------------------------------------------------------------- phases


def throughput(plan: Plan, base: WorkerSettings, db: str, work: Path, out: dict[str, Any]) -> None:
    sim = simulate(plan.records, seed=BENCH_SEED, config=BENCH_CONFIG)
    truth = truth_of(sim)
    total = len(sim.records) + 2 * plan.partitions  # and the closing heartbeats
    out["records"] = total
    settings = replace(base, match=BENCH_CONFIG)
    with pipeline(settings, db, work, "recon_bench_suite") as pipe:
        kafka, topics = pipe.settings.kafka, pipe.settings.topics
        produce(sim, kafka, topics, plan.partitions)
        say(f"produced {total:,} records to {topics.payments} and {topics.ledger}")

        sink_out = f"{pipe.settings.app_id}.passthrough"
        create_topics(kafka, [sink_out], plan.partitions)
        try:
            with bar("limit", total) as update:
                limit_s = pass_through(
                    kafka, (topics.payments, topics.ledger), sink_out, plan.partitions, total,
                    progress=update,
                )  # fmt: skip
        finally:
            delete_topics(kafka, [sink_out])
        out["limit_passthrough_rps"] = total / limit_s
        say(f"limit: {out['limit_passthrough_rps']:,.0f} records/s")

        worker = pipe.worker()
        with bar("worker", total) as update:
            run = time_worker(worker, total, progress=update)
        worker.stop()
        out["worker_rps"] = run.rps
        out["worker_over_limit"] = run.rps / out["limit_passthrough_rps"]
        out["worker_matches"], out["expected_matches"] = run.matches, len(truth.matches)
        say(f"worker: {run.rps:,.0f} records/s; {run.matches:,}/{len(truth.matches):,} matches")

        records, last = read_topic(kafka, topics.matched)
        sink_base = replace(
            sink_settings_from_env(),
            kafka=kafka,
            database_url=db,
            schema=pipe.schema,
            group_id=f"{pipe.settings.app_id}-bench-sink",
            topics=TopicNames(
                matched=topics.matched, exceptions=topics.matched, dlq=topics.matched
            ),
        )
        with bar("sink", len(records)) as update:
            sink = time_sink(sink_base, last, len(records), progress=update)
        copy_schema = "recon_bench_copy"
        _fresh_schema(db, copy_schema)
        rows = match_rows(records)
        with bar("raw COPY", len(rows)) as update:
            copy_s = copy_rows(
                replace(sink_base, schema=copy_schema), rows, sink_base.batch_size, update
            )
        out["sink_rows"] = len(records)
        out["sink_rps"] = sink.rps
        out["copy_rps"] = len(rows) / copy_s
        out["sink_over_copy"] = sink.rps / out["copy_rps"]
        say(f"sink: {sink.rps:,.0f} rows/s; raw COPY {out['copy_rps']:,.0f} rows/s")

    raw = kafka_records(sim, plan.partitions, "json", TopicNames())
    with bar("in-process", len(raw)) as update:
        seconds, matches, exceptions, dead = run_pipeline(
            raw, "rocksdict", BENCH_CONFIG, partitions=plan.partitions, batch=base.batch_max,
            progress=update,
        )  # fmt: skip
    out["inprocess_rps"] = len(raw) / seconds
    out["inprocess_truth_ok"] = check(truth, matches, exceptions, dead).ok
    say(f"in-process: {out['inprocess_rps']:,.0f} records/s")


def latency(plan: Plan, base: WorkerSettings, db: str, work: Path, out: dict[str, Any]) -> None:
    # Half the measured maximum: records/s / 2, two records a pair.
    rate = max(1.0, out["worker_rps"] / 4)
    with bar("latency", plan.latency_s, unit="s") as update:
        lat = measure_to_postgres(
            replace(base, match=MatchConfig()), plan.lateness_ms, plan.latency_s, rate,
            database_url=db, work_root=work, progress=update,
        )  # fmt: skip
    if not lat.samples:
        raise RuntimeError("no latency samples")
    out["latency_ms_p50"] = lat.pct(0.5)
    out["latency_ms_p99"] = lat.pct(0.99)
    out["latency_pairs_per_s"] = rate
    out["latency_pairs"] = len(lat.samples)
    out["allowed_lateness_ms"] = plan.lateness_ms
    say(f"latency at {rate:,.0f} pairs/s: p50 {lat.pct(0.5):,.0f} ms, p99 {lat.pct(0.99):,.0f} ms")


def state(plan: Plan, base: WorkerSettings, db: str, work: Path, out: dict[str, Any]) -> None:
    settings = replace(base, match=MatchConfig())
    scaling: list[dict[str, float]] = []
    small = work / "expire-small" / "worker"
    with bar(f"build {plan.expire_small:,}", plan.expire_small, unit="group") as update:
        build_open_groups(small, plan.expire_small, plan.partitions, settings.match, update)
    scaling.append(_expiry(small, plan.expire_small, settings))
    shutil.rmtree(small.parent)
    for slot, groups in zip(("1m", "10m"), plan.open_groups, strict=True):
        _state_slot(slot, groups, plan, settings, db, work, out, scaling)
    out["expire_scaling"] = scaling


def _state_slot(
    slot: str,
    groups: int,
    plan: Plan,
    settings: WorkerSettings,
    db: str,
    work: Path,
    out: dict[str, Any],
    scaling: list[dict[str, float]],
) -> None:
    """RSS and expiry over ``groups`` open groups; the restore too for the "1m" slot."""
    kept: list[Path] = []
    bars: dict[str, tuple[Any, Callable[[float], None]]] = {}

    def progress(phase: str, n: int, total: int) -> None:
        if phase not in bars:
            ctx = bar(f"{phase} {groups:,}", total or None)
            bars[phase] = (ctx, ctx.__enter__())
        bars[phase][1](n)

    try:
        memory = worker_rss(
            settings, groups, plan.traffic, database_url=db, work_root=work,
            progress=progress, keep=kept.append,
        )  # fmt: skip
        out[f"rss_mb_{slot}_open"] = memory.peak_rss_mb
        out[f"rss_{slot}_open_groups"] = groups
        say(f"worker over {groups:,} open groups: peak RSS {memory.peak_rss_mb:,.0f} MB")
        if slot == "1m":
            rest = time_restore(kept[0], settings, progress)
            out["restore_rps"], out["restore_records"] = rest.rps, rest.records
            say(f"restore: {rest.records:,} records at {rest.rps:,.0f}/s")
        expiry = _expiry(kept[0], groups, settings)
        scaling.append(expiry)
        if slot == "1m":
            out["expire_1pct_of_1m_s"] = expiry["seconds"]
            out["expire_1pct_of_1m_groups"] = groups
    finally:
        for ctx, _ in bars.values():
            ctx.__exit__(None, None, None)
        if kept:
            shutil.rmtree(kept[0].parent)  # up to GBs of RocksDB


def _expiry(data_dir: Path, groups: int, settings: WorkerSettings) -> dict[str, float]:
    e = time_expiry(data_dir, groups, settings)
    say(f"expired {e.expired:,} of {groups:,} open groups in {e.seconds:.2f}s")
    return {
        "open_groups": groups,
        "expired": e.expired,
        "seconds": e.seconds,
        "us_per_expired": e.us_per_expired,
    }


def _fresh_schema(db: str, schema: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


def run_peers(plan: Plan, out: dict[str, Any], work: Path) -> None:
    """The quix-streams peer (bench/peers/run_peer.py, its own virtualenv) on the same
    simulation: its records/s beside the worker's, and the ratio."""
    target = work / "peers.json"
    argv = [sys.executable, str(PEER), "--count", str(plan.records)]
    argv += ["--partitions", str(plan.partitions), "--json", str(target)]
    subprocess.run(argv, check=True, cwd=ROOT)
    peer = json.loads(target.read_text())
    out["peers"] = peer
    out["peer_rps"] = peer["peer_rps"]
    if "worker_rps" in out:
        out["worker_over_peer"] = out["worker_rps"] / peer["peer_rps"]
    say(f"quix-streams peer: {peer['peer_rps']:,.0f} records/s")


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, under 2 minutes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the quix-streams peer (default: in the full run, not in --quick)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's work directory")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    db = database_url_from_env()
    base = replace(worker_from_env(), partitions=plan.partitions, web_port=free_port())
    work = ROOT / ".local" / "bench" / f"suite-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    began = time.monotonic()
    phases: list[tuple[str, Callable[[Plan, WorkerSettings, str, Path, dict[str, Any]], None]]] = [
        ("throughput", throughput),
        ("latency", latency),
        ("state", state),
    ]
    failed = False
    try:
        for name, phase in phases:
            started = time.monotonic()
            say(f"{name} ...")
            phase(plan, base, db, work, results)
            timings[name] = round(time.monotonic() - started, 1)
        if args.peers or (args.peers is None and not args.quick):
            started = time.monotonic()
            say("peers ...")
            run_peers(plan, results, work)
            timings["peers"] = round(time.monotonic() - started, 1)
    except Exception:
        failed = True
        results["error"] = traceback.format_exc()
        traceback.print_exc()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    timings["total"] = round(time.monotonic() - began, 1)
    results["phase_seconds"] = timings
    results["machine"] = machine(args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_finite(results), indent=2, sort_keys=True) + "\n")
    print(markdown(results))
    print(
        f"\n{'QUICK ' if args.quick else ''}run in {timings['total']:.0f}s; written to {args.out}"
    )
    return 1 if failed else 0


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a figure is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    os.chdir(ROOT)  # the pipeline's and the worker's relative paths are the repo's
    raise SystemExit(main())

"""``recon demo``: the whole pipeline on local defaults, checked against its ground truth.

Creates a run's topics, starts a worker and the sink, simulates upstream traffic with every
scenario, waits until PostgreSQL holds every outcome, and prints the summary from PostgreSQL
with the comparison against the simulator's ground truth. It stops what it started.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=5000, help="input records to simulate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", choices=("json", "avro"), default="json")
    parser.add_argument("--schema", default="recon_demo", help="PostgreSQL schema for the results")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for the results"
    )


def run(args: argparse.Namespace) -> int:
    import psycopg

    from streams.local_runner import pipeline
    from streams.settings import database_url_from_env
    from streams.simulate.produce import produce
    from streams.simulate.scenarios import simulate
    from streams.simulate.truth import truth_of
    from streams.simulate.verify_pg import differences, expected_counts, row_counts
    from streams.worker.settings import worker_from_env

    base = worker_from_env()
    # Tolerances on so every rule shows up; everything else is the documented default.
    match = replace(
        base.match,
        amount_tolerance_minor=max(base.match.amount_tolerance_minor, 5),
        amount_tolerance_bps=max(base.match.amount_tolerance_bps, 10),
    )
    base = replace(base, match=match, partitions=3)
    url = database_url_from_env()
    sim = simulate(args.count, seed=args.seed, config=match)
    truth = truth_of(sim)
    want = expected_counts(truth)
    print(
        f"simulated {len(sim.records)} records over {len(truth.scenarios)} scenarios: {dict(sorted(truth.scenarios.items()))}"
    )

    with pipeline(base, url, Path(".local/demo"), args.schema) as pipe:
        print(
            f"topics {pipe.settings.topics.payments} / {pipe.settings.topics.ledger} ({pipe.settings.partitions} partitions); results in schema {args.schema}"
        )
        started = time.monotonic()
        pipe.worker()
        pipe.sink()
        print(f"worker and sink up in {time.monotonic() - started:.1f}s")
        t0 = time.monotonic()
        stats = produce(
            sim,
            pipe.settings.kafka,
            pipe.settings.topics,
            pipe.settings.partitions,
            fmt=args.format,
        )
        print(
            f"produced {stats.records} records + {stats.heartbeats} heartbeats in {stats.seconds:.1f}s"
        )
        with pipe.pg() as conn:
            got = (0, 0, 0, 0)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                try:
                    got = row_counts(conn)
                except psycopg.Error:
                    got = (0, 0, 0, 0)
                if got == want:
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - t0
            print(
                f"all outcomes in PostgreSQL {elapsed:.1f}s after the first record ({len(sim.records) / elapsed:,.0f} records/s end to end)"
            )
            _print_summary(conn)
            problems = differences(truth, conn)
            _operator_tools(pipe, conn)
    if problems or got != want:
        print(f"\nPostgreSQL does NOT equal the ground truth (rows {got}, expected {want}):")
        for line in problems[:20]:
            print("  " + line)
        return 1
    print(
        f"\nPostgreSQL equals the ground truth: {want[0]} matches, {want[1]} exceptions ({want[2]} resolved), {want[3]} dead letters, every id, rule, kind and status."
    )
    return 0


def _operator_tools(pipe: Any, conn: Any) -> None:
    """What ops run every day, on the demo's run: the trial balance and the report page."""
    from connectors.postgres.settings import sink_settings_from_env
    from streams.local_runner import env_for
    from streams.ops.report import build_report, render_html
    from streams.ops.verify import render
    from streams.ops.verify_command import trial_balance

    env = env_for(pipe.settings, pipe.work_dir / "ops", pipe.schema, pipe.database_url)
    verdict = trial_balance(pipe.settings, sink_settings_from_env(env), progress=False)
    print("\nrecon verify (the daily trial balance):")
    print("  " + render(verdict).replace("\n", "\n  "))
    page = Path(".local/demo/report.html")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_html(build_report(conn)), encoding="utf-8")
    print(f"\nrecon report --html: {page.resolve()} (open it in a browser)")


def _print_summary(conn: object) -> None:
    import psycopg

    assert isinstance(conn, psycopg.Connection)
    sections = (
        (
            "matches by rule",
            "SELECT rule, count(*), sum(payment_amount_minor) FROM recon_matches GROUP BY 1 ORDER BY 1",
        ),
        (
            "exceptions by kind and status",
            "SELECT kind || ' / ' || status, count(*), sum(payment_amount_minor) FROM recon_exceptions GROUP BY 1 ORDER BY 1",
        ),
        (
            "dead letters by reason",
            "SELECT origin || ' / ' || reason, count(*), NULL FROM recon_dead_letters GROUP BY 1 ORDER BY 1",
        ),
    )
    for title, sql in sections:
        print(f"\n{title}:")
        for label, n, amount in conn.execute(sql):
            extra = f"  (payment side {amount:,} minor units)" if amount is not None else ""
            print(f"  {label:<32} {n:>6}{extra}")

"""``recon simulate``: produce realistic upstream traffic and write its ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count", type=int, default=3000, help="input records to produce (at least)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="records per second (0 = as fast as possible)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", choices=("json", "avro"), default="json")
    parser.add_argument(
        "--truth", type=Path, default=Path(".local/truth.json"), help="ground-truth file to write"
    )
    parser.add_argument(
        "--no-flush", action="store_true", help="do not send the closing heartbeats"
    )
    parser.add_argument(
        "--step-ms", type=int, default=30_000, help="event time between scenario starts"
    )


def run(args: argparse.Namespace) -> int:
    from streams.simulate.produce import produce
    from streams.simulate.scenarios import simulate
    from streams.simulate.truth import summarize, truth_of
    from streams.worker.settings import worker_from_env

    settings = worker_from_env()
    sim = simulate(args.count, seed=args.seed, config=settings.match, step_ms=args.step_ms)
    truth = truth_of(sim)
    args.truth.parent.mkdir(parents=True, exist_ok=True)
    args.truth.write_bytes(truth.to_json())
    stats = produce(
        sim,
        settings.kafka,
        settings.topics,
        settings.partitions,
        fmt=args.format,
        rate=args.rate,
        flush_heartbeats=not args.no_flush,
    )
    print(
        f"produced {stats.records} records + {stats.heartbeats} heartbeats in {stats.seconds:.1f}s ({stats.records / max(stats.seconds, 1e-9):,.0f}/s)"
    )
    for name, counts in summarize(truth).items():
        print(f"expected {name}: {dict(sorted(counts.items()))}")
    print(f"ground truth: {args.truth}")
    return 0

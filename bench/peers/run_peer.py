"""Runs the quix-streams peer (bench/peers/quix_match.py) on the worker bench's records.

Same records as ``python bench/worker_bench.py`` (same seed, count, tolerances and
closing heartbeats), produced to fresh topics of one run; the peer then runs in its own
virtualenv (bench/peers/setup.sh) and reports its records/s from the first input record it read
to its last checkpoint committed. Its matches are then counted again in the output topic,
read_committed, and compared with the exact 1:1 count replayed here from the simulation. What
the run created (topics, the peer's state) is removed at the end.

    .venv/bin/python bench/peers/run_peer.py [--count 100000] [--partitions 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from pairing import LEDGER, PAYMENT, is_event, pair

from streams.contract.model import Side
from streams.engine.config import MatchConfig
from streams.local_runner import run_settings
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import Simulation, simulate
from streams.simulate.truth import truth_of
from streams.worker.settings import worker_from_env
from streams.worker.topics import create_topics

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def expected_pairs(sim: Simulation) -> int:
    """The peer's logic replayed in emission order. The count depends on the order only for a
    reference with two or more events on both sides; the simulation has none."""
    pending: dict[bytes | None, list[Any]] = {}
    matches = 0
    for record in sim.records:
        value: Any = record.value
        if isinstance(value, bytes):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
        if not is_event(value):
            continue
        side = PAYMENT if record.side is Side.PAYMENT else LEDGER
        after, out = pair(pending.get(record.key), side, value)
        if after is None:
            pending.pop(record.key, None)
        else:
            pending[record.key] = after
        matches += out is not None
    return matches


def count_output(kafka: KafkaSettings, topic: str, partitions: int, want: int) -> int:
    """Committed records in ``topic``: until ``want`` are read or 5 s pass without one."""
    consumer = Consumer(
        {
            **kafka.confluent_config(),
            "group.id": f"peer-count-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen, quiet_since = 0, time.monotonic()
    while seen < want and time.monotonic() - quiet_since < 5:
        batch = consumer.consume(num_messages=10_000, timeout=0.5)
        if batch:
            seen += sum(1 for m in batch if not m.error())
            quiet_since = time.monotonic()
    consumer.close()
    return seen


def peer_python() -> str:
    """The peers venv's python, created on first use."""
    out = subprocess.run(
        [str(HERE / "setup.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the peer may take")
    args = parser.parse_args()

    python = peer_python()
    config = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10)
    sim = simulate(args.count, seed=5, config=config)
    expected = expected_pairs(sim)
    print(
        f"{len(sim.records)} records, {expected} exact 1:1 pairs by reference "
        f"({len(truth_of(sim).matches)} matches of the worker's rules), {args.partitions} partitions"
    )

    run_id = f"peer{uuid.uuid4().hex[:8]}"
    settings = run_settings(replace(worker_from_env(), partitions=args.partitions), run_id)
    topics, kafka = settings.topics, settings.kafka
    work = ROOT / ".local" / "peers" / run_id
    admin = AdminClient(kafka.confluent_config())
    create_topics(settings)
    try:
        stats = produce(sim, kafka, topics, args.partitions)
        total = stats.records + stats.heartbeats
        work.mkdir(parents=True)
        argv = [
            python,
            str(HERE / "quix_match.py"),
            *("--payments", topics.payments, "--ledger", topics.ledger),
            *("--output", topics.matched, "--group", f"{run_id}-quix"),
            *("--state-dir", str(work / "state"), "--expect", str(total)),
        ]
        conf = {k: v for k, v in kafka.confluent_config().items() if k != "logger"}  # not JSON
        env = {**os.environ, "RECON_PEER_KAFKA": json.dumps(conf)}
        with (work / "peer.log").open("wb") as log:
            done = subprocess.run(
                argv, env=env, stdout=subprocess.PIPE, stderr=log, timeout=args.timeout, check=False
            )
        if done.returncode != 0:
            sys.exit(f"quix-streams peer failed ({done.returncode}); see {work / 'peer.log'}")
        peer = json.loads(done.stdout.decode().strip().splitlines()[-1])
        committed = count_output(kafka, topics.matched, args.partitions, peer["matches"])
    finally:
        created = [name for name in admin.list_topics(timeout=30).topics if run_id in name]
        for future in admin.delete_topics(created, operation_timeout=30).values():
            with suppress(Exception):
                future.result(timeout=30)
        shutil.rmtree(work / "state", ignore_errors=True)

    records, seconds, matches = peer["records"], peer["seconds"], peer["matches"]
    rps = records / seconds
    print(
        f"quix-streams peer (exactly-once, RocksDB): {records:,} records in {seconds:.1f}s = "
        f"{rps:,.0f} records/s; {matches:,} matches "
        f"(last commit and close {peer['end'] - peer['last']:.2f}s; "
        f"process CPU {peer['cpu_seconds']:.1f}s from start to exit)"
    )
    print(
        f"  exact 1:1 pairs expected {expected:,}, in the output topic (read_committed) "
        f"{committed:,}; {peer['heartbeats']} heartbeats, {peer['parse_errors']} unparsable, "
        f"{peer['ignored']} not events, {peer['same_side']} second events of a waiting side"
    )
    if committed != matches or matches != expected:
        print("  WARNING: the peer's match count is not the expected one")
    if args.json:
        figures = {
            "peer_rps": rps,
            "peer_records": records,
            "peer_matches": matches,
            "peer_seconds": seconds,
        }
        args.json.write_text(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()

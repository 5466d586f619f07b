"""``recon replay``: rebuild every result from the input topics, into a new generation.

After a bad deploy (a wrong matching config, a bug fixed since), the results must be what the
code and config deployed now make of the inputs. A replay:

1. registers generation N = live + 1 (streams/generation.py): its own worker group and empty
   state, output topics, sink group and PostgreSQL schema; the inputs are shared;
2. runs a worker and a sink of generation N as child processes, with this environment (so
   with the matching config deployed now), reading the inputs from the earliest offsets, and
   shows the records left per input partition;
3. when they have caught up with the inputs as they were when it started, switches readers to
   generation N in one PostgreSQL transaction (connectors/postgres/generations.py): readers
   see the old generation or the new one, never a mix, and no row of the old one stays
   visible. The old generation's sink is fenced: it stops at its next batch.
4. stops its children, unless ``--keep-running``. Then deploy ``RECON_GENERATION=N`` to the
   workers and the sink (they continue from where the replay's stopped) and stop generation
   N-1; ``recon replay --retire N-1`` deletes its topics and schema.

Exit codes: 0 switched, 1 a child failed or the catch-up timed out (nothing switched; run it
again to resume), 2 refused (e.g. another replay is under way).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import sql
from tqdm import tqdm

from connectors.postgres import generations
from streams.ops.describe import group_lags
from streams.ops.exceptions import OpsError
from streams.ops.generations import Generation, children, connect, generation, prepare
from streams.ops.verify_sources import NotCaughtUpError, input_ends, wait_caught_up
from streams.worker.topics import faust_internal_topic_names, topic_names


def catch_up(
    new: Generation,
    procs: list[subprocess.Popen[bytes]],
    timeout_s: float,
    progress: bool = True,
) -> None:
    """Until the new generation's worker has committed past the inputs' end offsets taken now
    and its sink has stored every output; a bar per input partition shows the records left."""
    cut = input_ends(new.worker)
    admin = AdminClient(new.worker.kafka.confluent_config())
    tps = [TopicPartition(t, p) for t, p in sorted(cut)]
    bars = {
        (tp.topic, tp.partition): tqdm(
            total=cut[(tp.topic, tp.partition)],
            desc=f"{tp.topic}[{tp.partition}]",
            unit="rec",
            position=i,
            leave=False,
            disable=None if progress else True,
        )
        for i, tp in enumerate(tps)
    }
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            _alive(procs)
            committed = {
                (p.topic, p.partition): p.committed or 0
                for p in group_lags(admin, new.worker.app_id, tps)
            }
            for key, bar in bars.items():
                bar.n = min(committed.get(key, 0), cut[key])
                bar.refresh()
            if all(committed.get(k, 0) >= end for k, end in cut.items() if end > 0):
                break
            if time.monotonic() > deadline:
                left = sum(max(0, end - committed.get(k, 0)) for k, end in cut.items())
                raise OpsError(f"the replay did not catch up in {timeout_s:.0f}s: {left} left")
            time.sleep(0.5)
    finally:
        for bar in bars.values():
            bar.close()
    try:
        wait_caught_up(new.worker, new.sink, cut, max(1.0, deadline - time.monotonic()))
    except NotCaughtUpError as exc:
        raise OpsError(f"the replay's sink did not catch up: {exc}") from exc


def _alive(procs: list[subprocess.Popen[bytes]]) -> None:
    for name, proc in zip(("worker", "sink"), procs, strict=False):
        if proc.poll() is not None:
            raise OpsError(f"the replay's {name} exited with {proc.returncode}")


def retire(env: Mapping[str, str], number: int) -> None:
    """Delete a retired generation's topics and schema (its rows are invisible already)."""
    old = generation(env, number)
    with connect(old.sink) as conn:
        status = generations.statuses(conn, old.sink.readers).get(number)
        if status != "retired":
            raise OpsError(f"generation {number} is {status or 'unknown'}, not retired")
        if number > 0:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old.sink.schema))
            )
    admin = AdminClient(old.worker.kafka.confluent_config())
    inputs = {old.worker.topics.payments, old.worker.topics.ledger}
    doomed = [
        t
        for t in topic_names(old.worker) + faust_internal_topic_names(old.worker)
        if t not in inputs
    ]
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # already gone
            future.result(timeout=60)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to catch up")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the switch, keep the new generation's worker and sink running here",
    )
    parser.add_argument(
        "--retire", type=int, metavar="N", help="delete retired generation N's topics and schema"
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".local/replay"))


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env.pop("RECON_GENERATION", None)  # this command picks the generation
    if args.retire is not None:
        retire(env, args.retire)
        print(f"generation {args.retire}: topics and schema deleted")
        return 0
    base = generation(env, 0)
    with connect(base.sink) as conn:
        known = generations.statuses(conn, base.sink.readers)
    replaying = [g for g, s in known.items() if s == "replaying"]
    number = replaying[0] if replaying else max(known, default=0) + 1
    new = generation(env, number)
    try:
        prepare(new)
    except generations.GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"replaying into generation {number}: worker group {new.worker.app_id}, "
        f"outputs {new.worker.topics.matched} ..., schema {new.sink.schema}"
    )
    with children(new, args.work_dir / f"g{number}") as procs:
        try:
            catch_up(new, procs, args.timeout)
        except OpsError as exc:
            print(f"error: {exc}; nothing switched, run again to resume", file=sys.stderr)
            return 1
        with connect(new.sink) as conn:
            old = generations.switch(conn, new.sink.readers, number, new.sink.schema)
        print(
            f"switched: readers of schema {new.sink.readers} now see generation {number}; "
            f"generation {old} is retired (its sink stops at its next batch)"
        )
        if args.keep_running:
            print("keeping generation", number, "running here; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while all(p.poll() is None for p in procs):
                    time.sleep(1)
    print(
        f"next: deploy RECON_GENERATION={number} to the workers and the sink, stop generation "
        f"{old}, then `recon replay --retire {old}`"
    )
    return 0

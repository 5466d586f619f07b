"""``recon scale --partitions N``: move the whole system to N partitions, under traffic.

Design and reasons in docs/scaling.md. In short: a new generation (streams/generation.py) on
new input topics with N partitions, fed by a bridge that copies the old inputs into them
re-partitioned by murmur2 (streams/ops/bridge.py). The new generation rebuilds its state from
the inputs' history, so every open group of the old layout is rebuilt on the new one, and a
counterpart that arrives later, through either layout, finds it. Readers switch to the new
generation in one transaction, as after a replay. The bridge keeps copying what producers
still send to the old inputs until those have been quiet for ``--drain-idle`` seconds.

Exit codes: 0 switched and drained, 1 failed (nothing switched, or the drain was cut short:
run again to resume), 2 refused.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.postgres import generations
from streams.contract.model import Side
from streams.ops.bridge import Bridge
from streams.ops.describe import group_lags
from streams.ops.exceptions import OpsError
from streams.ops.generations import Generation, children, connect, generation, prepare
from streams.ops.generations import current as live_generation
from streams.ops.replay import catch_up
from streams.ops.verify_sources import input_ends
from streams.worker.decoder import input_decoder
from streams.worker.topics import verify_copartitioned


def scaled_env(env: Mapping[str, str], current: Generation, partitions: int) -> dict[str, str]:
    """The environment of the new layout: N partitions, inputs ``<name>.p<N>``."""
    t = current.worker.topics
    return {
        **env,
        "RECON_PARTITIONS": str(partitions),
        "RECON_TOPIC_PAYMENTS": f"{t.payments}.p{partitions}",
        "RECON_TOPIC_LEDGER": f"{t.ledger}.p{partitions}",
    }


def bridge_group(current: Generation, partitions: int) -> str:
    return f"{current.worker.app_id}-scale-p{partitions}"


def _bridged(admin: AdminClient, group: str, cut: Mapping[tuple[str, int], int]) -> bool:
    tps = [TopicPartition(t, p) for t, p in cut]
    committed = {(p.topic, p.partition): p.committed or 0 for p in group_lags(admin, group, tps)}
    return all(committed.get(k, 0) >= end for k, end in cut.items() if end > 0)


def _wait_bridged(
    bridge: Bridge, admin: AdminClient, group: str, cut: Mapping[tuple[str, int], int],
    timeout_s: float,
) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not _bridged(admin, group, cut):
        if bridge.error is not None:
            raise OpsError(f"the bridge failed: {bridge.error}")
        if time.monotonic() > deadline:
            raise OpsError("the bridge did not copy the old inputs in time")
        time.sleep(0.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partitions", type=int, required=True, help="the new partition count")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to catch up")
    parser.add_argument(
        "--drain-idle",
        type=float,
        default=300,
        help="after the switch, bridge until the old inputs were quiet this many seconds",
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".local/scale"))


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env.pop("RECON_GENERATION", None)
    base = generation(env, 0)
    with connect(base.sink) as conn:
        known = generations.statuses(conn, base.sink.readers)
    current = live_generation(env)
    if args.partitions < 1 or args.partitions == current.worker.partitions:
        print(
            f"error: --partitions {args.partitions}: the system has "
            f"{current.worker.partitions} partitions now",
            file=sys.stderr,
        )
        return 2
    verify_copartitioned(current.worker)
    replaying = [g for g, s in known.items() if s == "replaying"]
    number = replaying[0] if replaying else max(known, default=0) + 1
    new = generation(scaled_env(env, current, args.partitions), number)
    try:
        prepare(new)
    except generations.GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    old_t, new_t = current.worker.topics, new.worker.topics
    group = bridge_group(current, args.partitions)
    bridge = Bridge(
        current.worker.kafka,
        {old_t.payments: (new_t.payments, Side.PAYMENT), old_t.ledger: (new_t.ledger, Side.LEDGER)},
        current.worker.partitions,
        args.partitions,
        group,
        input_decoder(current.worker),
    )
    thread = threading.Thread(target=bridge.run, name="scale-bridge", daemon=True)
    thread.start()
    admin = AdminClient(current.worker.kafka.confluent_config())
    print(
        f"scaling {current.worker.partitions} -> {args.partitions} partitions in generation "
        f"{number}: inputs {new_t.payments} and {new_t.ledger}, schema {new.sink.schema}"
    )
    try:
        with children(new, args.work_dir / f"g{number}") as procs:
            _wait_bridged(bridge, admin, group, input_ends(current.worker), args.timeout)
            catch_up(new, procs, args.timeout)
            with connect(new.sink) as conn:
                old = generations.switch(conn, new.sink.readers, number, new.sink.schema)
            print(f"switched: readers see generation {number} on {args.partitions} partitions")
            # The new generation keeps running here while producers move to the new inputs.
            quiet_since = time.monotonic()
            copied = -1
            while time.monotonic() - quiet_since < args.drain_idle:
                if bridge.error is not None:
                    raise OpsError(f"the bridge failed: {bridge.error}")
                if bridge.stats.copied != copied:
                    copied, quiet_since = bridge.stats.copied, time.monotonic()
                time.sleep(0.5)
            _wait_bridged(bridge, admin, group, input_ends(current.worker), args.timeout)
    except OpsError as exc:
        print(f"error: {exc}; run again to resume", file=sys.stderr)
        return 1
    finally:
        bridge.stop.set()
        thread.join(60)
    print(
        f"drained: the old inputs were quiet for {args.drain_idle:.0f}s and are all copied.\n"
        f"next: deploy RECON_GENERATION={number} RECON_PARTITIONS={args.partitions} "
        f"RECON_TOPIC_PAYMENTS={new_t.payments} RECON_TOPIC_LEDGER={new_t.ledger}; point "
        f"producers at the new inputs; stop generation {old}; `recon replay --retire {old}`"
    )
    return 0

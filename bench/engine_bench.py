"""Throughput of the pure matching engine (a script, not a test).

``python bench/engine_bench.py [--events N --groups G]`` generates N events, seeded and
deterministic: each step opens a group (one payment) and closes the group opened G steps
before (one ledger credit, split in two one time in ten), so about G groups stay open. The two
inputs are interleaved in blocks of 1000, like a consumer's fetches. It prints events/s for
the memory store and for rocksdict (temporary directory), each per item and through the
batching overlay flushed every 1000 items.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from hashlib import blake2b
from pathlib import Path

from streams.contract.model import Flow, Heartbeat, InputEvent, Side
from streams.engine import EngineOutput, Item, MatchConfig, MatchingEngine
from streams.engine.config import HOUR_MS
from streams.state.base import KeyValueStore
from streams.state.memory import MemoryStore
from streams.state.transaction import PartitionTransaction

T0 = 1_700_000_000_000
STEP_MS = 100
BLOCK = 1000


def _event(side: Side, event_id: str, ref: str, amount: int, t: int, offset: int) -> InputEvent:
    digest = blake2b(f"{side}{event_id}{ref}{amount}{t}".encode(), digest_size=16).digest()
    return InputEvent(side, event_id, ref, amount, "EUR", t, Flow.PAYMENT, digest, offset)


def side_streams(events: int, groups: int, seed: int) -> tuple[list[InputEvent], list[InputEvent]]:
    rng = random.Random(seed)
    pays: list[InputEvent] = []
    leds: list[InputEvent] = []
    amounts: list[int] = []
    step = 0
    while len(pays) + len(leds) < events:
        t = T0 + step * STEP_MS
        amount = rng.randrange(100, 100_000)
        amounts.append(amount)
        pays.append(_event(Side.PAYMENT, f"p{step}", f"ref{step}", amount, t, len(pays)))
        old = step - groups
        if old >= 0:
            due = amounts[old]
            if rng.random() < 0.1 and due > 1:
                first = rng.randrange(1, due)
                for k, part in enumerate((first, due - first)):
                    leds.append(_event(Side.LEDGER, f"l{old}.{k}", f"ref{old}", part, t, len(leds)))
            else:
                leds.append(_event(Side.LEDGER, f"l{old}", f"ref{old}", due, t, len(leds)))
        step += 1
    return pays, leds


def interleave(pays: list[InputEvent], leds: list[InputEvent]) -> Iterator[Item]:
    """Blocks of BLOCK items, each from the side that is behind in event time; then one
    heartbeat per side past the lateness, so the buffer is released at the end."""
    i = j = 0
    while i < len(pays) or j < len(leds):
        if j >= len(leds) or (i < len(pays) and pays[i].event_time_ms <= leds[j].event_time_ms):
            yield from pays[i : i + BLOCK]
            i += BLOCK
        else:
            yield from leds[j : j + BLOCK]
            j += BLOCK
    end = max(pays[-1].event_time_ms, leds[-1].event_time_ms if leds else 0) + HOUR_MS
    yield Heartbeat(Side.PAYMENT, end, len(pays))
    yield Heartbeat(Side.LEDGER, end, len(leds))


def run_once(label: str, store: KeyValueStore, items: list[Item], batched: bool) -> EngineOutput:
    engine = MatchingEngine(MatchConfig())
    total = EngineOutput()
    began = time.perf_counter()
    if batched:
        assert isinstance(store, PartitionTransaction)
        for start in range(0, len(items), BLOCK):
            batch = items[start : start + BLOCK]
            total.extend(engine.on_batch(store, 0, batch))
            store.flush()
    else:
        for item in items:
            total.extend(engine.on_item(store, 0, item))
    elapsed = time.perf_counter() - began
    open_groups = len(engine.snapshot(store, 0).groups)
    print(
        f"{label:<28} {len(items) / elapsed:>10,.0f} events/s  ({elapsed:6.1f} s, "
        f"{len(total.matches):,} matches, {open_groups:,} open groups at the end)",
        flush=True,
    )
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-rocksdict", action="store_true")
    args = parser.parse_args(argv)
    pays, leds = side_streams(args.events, args.groups, args.seed)
    items = list(interleave(pays, leds))
    print(f"{len(items):,} events, about {args.groups:,} open groups", flush=True)
    runs: list[tuple[str, Callable[[Path], KeyValueStore], bool]] = [
        ("memory, per item", lambda _: MemoryStore(), False),
        ("memory + overlay/1000", lambda _: PartitionTransaction(MemoryStore()), True),
    ]
    if not args.skip_rocksdict:
        from streams.state.rocksdict_store import RocksDictStore

        runs += [
            ("rocksdict, per item", lambda p: RocksDictStore(p / "db"), False),
            (
                "rocksdict + overlay/1000",
                lambda p: PartitionTransaction(RocksDictStore(p / "db")),
                True,
            ),
        ]
    for label, make, batched in runs:
        with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
            store = make(Path(tmp))
            run_once(label, store, items, batched)
            inner = store.store if isinstance(store, PartitionTransaction) else store
            close = getattr(inner, "close", None)
            if close is not None:
                close()


if __name__ == "__main__":
    main()

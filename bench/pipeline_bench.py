"""Throughput of the worker's per-record path, stage by stage (a script, not a test).

``python bench/pipeline_bench.py [--count N] [--store memory|rocksdict] [--profile]``
simulates N input records (seeded), lays them out as the input topics would hold them (3
partitions, murmur2) in JSON and in Avro, and for each format prints records/s of:

* ``pipeline``: :class:`BatchProcessor` in batches of 1000 records (decode, validate, engine
  over the write-batching overlay, one flush per partition and batch), outputs checked
  against the simulation's ground truth (OK/FAIL);
* ``decode``: :meth:`InputDecoder.decode` alone;
* ``engine``: the pre-decoded admitted items through ``on_batch`` + flush alone, in the same
  batches, so decode + engine + glue add up to the pipeline figure.

Each stage runs ``--repeat`` times (default 3) and the best time is shown. ``--profile`` runs the JSON pipeline once more under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.contract.decode import InputDecoder, Rejection
from streams.contract.model import (
    DeadLetter,
    ExceptionRecord,
    Heartbeat,
    InputEvent,
    MatchRecord,
    Side,
)
from streams.engine.config import MatchConfig
from streams.engine.engine import MatchingEngine
from streams.settings import TopicNames
from streams.simulate.encoding import Format
from streams.simulate.local import kafka_records
from streams.simulate.scenarios import simulate
from streams.simulate.truth import Truth, check, truth_of
from streams.state.base import KeyValueStore
from streams.state.memory import MemoryStore
from streams.state.transaction import PartitionTransaction
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, RawRecord

PARTITIONS = 3
BATCH = 1000
FORMATS: tuple[Format, ...] = ("json", "avro")


@contextmanager
def stores(kind: str) -> Iterator[Callable[[int], KeyValueStore]]:
    """A ``store_for(partition)`` of fresh stores of ``kind``, closed on exit."""
    made: dict[int, KeyValueStore] = {}
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:

        def store_for(partition: int) -> KeyValueStore:
            store = made.get(partition)
            if store is None:
                if kind == "memory":
                    store = MemoryStore()
                else:
                    from streams.state.rocksdict_store import RocksDictStore

                    store = RocksDictStore(Path(tmp) / f"p{partition}")
                made[partition] = store
            return store

        try:
            yield store_for
        finally:
            for store in made.values():
                close = getattr(store, "close", None)
                if close is not None:
                    close()


def run_pipeline(
    records: list[RawRecord],
    kind: str,
    config: MatchConfig | None = None,
    *,
    partitions: int = PARTITIONS,
    batch: int = BATCH,
    progress: Callable[[int], object] | None = None,
) -> tuple[float, list[MatchRecord], list[ExceptionRecord], list[DeadLetter]]:
    """``records`` through a :class:`BatchProcessor` in batches; the seconds it took and the
    outputs. ``progress`` gets the records done after each batch (its time is not counted)."""
    matches: list[MatchRecord] = []
    exceptions: list[ExceptionRecord] = []
    dead: list[DeadLetter] = []
    with stores(kind) as store_for:
        processor = BatchProcessor(
            MatchingEngine(config or MatchConfig()), TopicNames(), partitions, store_for
        )
        elapsed = 0.0
        for start in range(0, len(records), batch):
            began = time.perf_counter()
            result = processor.process(records[start : start + batch])
            elapsed += time.perf_counter() - began
            matches += result.matches
            exceptions += result.exceptions
            dead += result.dead_letters
            if progress is not None:
                progress(min(start + batch, len(records)))
    return elapsed, matches, exceptions, dead


Item = InputEvent | Heartbeat


def decode_all(records: list[RawRecord]) -> tuple[float, list[tuple[int, Item | None]]]:
    """Decode every record; ``None`` where the processor would dead-letter it."""
    decoder = InputDecoder()
    topics = TopicNames()
    sides = {topics.payments: Side.PAYMENT, topics.ledger: Side.LEDGER}
    began = time.perf_counter()
    decoded = [decoder.decode(sides[r.topic], r.key, r.value, r.offset) for r in records]
    elapsed = time.perf_counter() - began
    items: list[tuple[int, Item | None]] = []
    for r, d in zip(records, decoded, strict=True):
        if isinstance(d, Rejection) or (
            isinstance(d, InputEvent)
            and partition_for(d.reference.encode(), PARTITIONS) != r.partition
        ):
            items.append((r.partition, None))
        else:
            items.append((r.partition, d))
    return elapsed, items


def run_engine(items: list[tuple[int, Item | None]], kind: str) -> tuple[float, int, int]:
    """Admitted items through ``on_batch`` per partition and batch, one flush each."""
    batches: list[dict[int, list[Item]]] = []
    for start in range(0, len(items), BATCH):
        by_partition: dict[int, list[Item]] = {}
        for partition, item in items[start : start + BATCH]:
            if item is not None:
                by_partition.setdefault(partition, []).append(item)
        batches.append(by_partition)
    engine = MatchingEngine(MatchConfig())
    n_matches = n_exceptions = 0
    with stores(kind) as store_for:
        began = time.perf_counter()
        for by_partition in batches:
            for partition, batch in by_partition.items():
                store = PartitionTransaction(store_for(partition))
                out = engine.on_batch(store, partition, batch)
                n_matches += len(out.matches)
                n_exceptions += len(out.exceptions)
                store.flush()
        elapsed = time.perf_counter() - began
    return elapsed, n_matches, n_exceptions


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>9,.0f} rec/s ({seconds * 1e6 / n:5.1f} us/rec, {seconds:5.2f} s)"


def bench_format(
    fmt: Format, records: list[RawRecord], truth: Truth, kind: str, repeat: int
) -> bool:
    """Each stage ``repeat`` times, best time shown (the machine is shared: noise is upward)."""
    n = len(records)
    elapsed, matches, exceptions, dead = run_pipeline(records, kind)
    for _ in range(repeat - 1):
        elapsed = min(elapsed, run_pipeline(records, kind)[0])
    verdict = check(truth, matches, exceptions, dead)
    status = "OK" if verdict.ok else "FAIL"
    print(f"{fmt:<5} pipeline  {_rate(n, elapsed)}  truth {status}", flush=True)
    for problem in verdict.problems[:10]:
        print(f"      {problem}")
    d_elapsed, items = decode_all(records)
    for _ in range(repeat - 1):
        d_elapsed = min(d_elapsed, decode_all(records)[0])
    print(f"{fmt:<5} decode    {_rate(n, d_elapsed)}", flush=True)
    e_elapsed, n_matches, n_exceptions = run_engine(items, kind)
    for _ in range(repeat - 1):
        e_elapsed = min(e_elapsed, run_engine(items, kind)[0])
    same = (n_matches, n_exceptions) == (len(matches), len(exceptions))
    print(
        f"{fmt:<5} engine    {_rate(n, e_elapsed)}  "
        f"({n_matches:,} matches, {n_exceptions:,} exceptions: {'same' if same else 'DIFFERENT'})",
        flush=True,
    )
    return verdict.ok and same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--store", choices=("memory", "rocksdict"), default="memory")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage, best shown")
    parser.add_argument("--profile", action="store_true", help="cProfile the JSON pipeline")
    args = parser.parse_args(argv)

    sim = simulate(args.count, seed=args.seed)
    truth = truth_of(sim)
    by_format = {fmt: kafka_records(sim, PARTITIONS, fmt, TopicNames()) for fmt in FORMATS}
    print(
        f"{len(by_format['json']):,} records, {PARTITIONS} partitions, batches of {BATCH}, "
        f"{args.store} stores",
        flush=True,
    )
    verdicts = [
        bench_format(f, recs, truth, args.store, args.repeat) for f, recs in by_format.items()
    ]
    ok = all(verdicts)  # every format is run even when one fails
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_pipeline(by_format["json"], args.store)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

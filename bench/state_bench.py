"""The worker's state at scale: RSS with N open groups, expiry cost, restore rate.

Producing millions of records through Kafka and the worker would take most of an hour, so the
open groups are built in-process, through the engine itself, straight into RocksDB data dirs
laid out as the worker's Faust table keeps them (``<data dir>/v1/tables/recon-state-<p>.db``),
one process per partition DB:

* N references ``OPEN-<i>``, each one payment (event time ``T0 + i * STEP_MS``) on its murmur2
  partition, released into open groups (deadline = event time + match window, none due);
* then the highest applied input offsets in the state's meta record are reset (see
  :func:`_reset_offsets`), so the worker accepts the offsets of its fresh input topics.

:func:`worker_rss` then starts one real worker (``streams.local_runner``) over that data dir, feeds
it a little live traffic on every partition (ledger entries that close some of the open groups,
and new payments), and reads the worker process's peak RSS (``VmHWM``). :func:`time_expiry`
advances the watermark of the same state in-process, through the worker's batch processor over
RocksDB opened with the worker's options, until 1% of the open groups pass their deadline.
:func:`time_restore` writes the state's records to a fresh changelog topic (in transactions, as
the worker does) and times the worker's restore of it into empty RocksDB dirs.

    python bench/state_bench.py [--groups 1000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from hashlib import blake2b
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from rocksdict import BlockBasedIndexType, BlockBasedOptions, Cache, Options

from streams.contract.model import Flow, Heartbeat, InputEvent, Side
from streams.engine import codec, keys
from streams.engine.config import MatchConfig
from streams.engine.engine import MatchingEngine
from streams.local_runner import free_port, pipeline, worker_metric
from streams.settings import KafkaSettings, TopicNames, database_url_from_env
from streams.simulate.produce import producer_config
from streams.state.base import KeyValueStore, prefix_end
from streams.state.recovery import restore
from streams.state.rocksdict_store import RocksDictStore
from streams.state.transaction import PartitionTransaction
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, RawRecord
from streams.worker.settings import WorkerSettings, worker_from_env
from streams.worker.topics import STATE_TABLE

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 10  # 10M groups span 28 h, inside the default 48 h match window: none due
BUILD_BATCH = 10_000
# Offsets far above the worker's traffic, for the in-process expiry's heartbeats.
EXPIRY_OFFSET = 1 << 40


def table_dir(data_dir: Path) -> Path:
    """Where the worker's Faust table keeps its partition DBs (faust: tabledir, version 1)."""
    return data_dir / "v1" / "tables"


def partition_db(data_dir: Path, partition: int) -> Path:
    return table_dir(data_dir) / f"{STATE_TABLE}-{partition}.db"


def worker_options(settings: WorkerSettings) -> Options:
    """RocksDB options as the worker's table opens its DBs (Faust's rocksdict options with the
    worker's ``RECON_ROCKSDB_*`` settings), so reads cost what they cost in the worker."""
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_max_open_files(256)
    opts.set_write_buffer_size(settings.rocksdb_write_buffer_bytes)
    opts.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_bloom_filter(3, True)
    table.set_block_cache(Cache(settings.rocksdb_block_cache_bytes))
    table.set_index_type(BlockBasedIndexType.binary_search())
    opts.set_block_based_table_factory(table)
    return opts


def reference(i: int) -> str:
    return f"OPEN-{i:09d}"


def amount(i: int) -> int:
    return 1000 + i % 9000


# ---------------------------------------------------------------------------------- building

_built: Synchronized[int] | None = None  # groups built so far, shared with the build processes


def _init_build(counter: Synchronized[int]) -> None:
    global _built  # noqa: PLW0603 - the pool initializer's one way to hand a child the counter
    _built = counter


def _partitions_of(start: int, stop: int, partitions: int) -> bytes:
    return bytes(partition_for(reference(i).encode(), partitions) for i in range(start, stop))


def _build_partition(
    path: str, partition: int, indexes: Sequence[int], fields: dict[str, int]
) -> int:
    # The config comes as its fields: the compiled core's frozen classes do not unpickle.
    config = MatchConfig(**fields)
    """Open groups for ``indexes`` in a new DB at ``path``; returns how many are open."""
    engine = MatchingEngine(config)
    store = RocksDictStore(path)
    offset = 0
    try:
        for start in range(0, len(indexes), BUILD_BATCH):
            items: list[InputEvent | Heartbeat] = []
            for i in indexes[start : start + BUILD_BATCH]:
                ref = reference(i)
                digest = blake2b(ref.encode(), digest_size=16).digest()
                t = T0 + i * STEP_MS
                event = InputEvent(
                    Side.PAYMENT, f"p{i}", ref, amount(i), "EUR", t, Flow.PAYMENT, digest, offset
                )
                items.append(event)
                offset += 1
            # The ledger side keeps up, so the watermark moves and payments are released.
            items.append(Heartbeat(Side.LEDGER, items[-1].event_time_ms, start))
            _apply(engine, store, partition, items)
            if _built is not None:
                with _built.get_lock():
                    _built.value += len(items) - 1
        # Release what the lateness still holds back: the watermark passes the last payment.
        end = T0 + (max(indexes, default=0) + 1) * STEP_MS + config.allowed_lateness_ms
        _apply(
            engine,
            store,
            partition,
            [Heartbeat(Side.PAYMENT, end, offset), Heartbeat(Side.LEDGER, end, offset)],
        )
        _reset_offsets(store)
        return sum(1 for _ in store.scan(keys.GROUP, prefix_end(keys.GROUP)))
    finally:
        store.close()


def _apply(
    engine: MatchingEngine,
    store: KeyValueStore,
    partition: int,
    items: Sequence[InputEvent | Heartbeat],
) -> None:
    overlay = PartitionTransaction(store)
    engine.on_batch(overlay, partition, items)
    overlay.flush()


def _reset_offsets(store: KeyValueStore) -> None:
    """Forget the build's input offsets: the engine skips any input at or below the highest
    offset it applied per side, and the worker's fresh topics start at 0. This is the one
    place that reads the engine's meta record directly (streams.engine.codec.Meta)."""
    raw = store.get(keys.META)
    assert raw is not None
    meta = codec.decode_meta(raw)
    meta.offsets = [-1, -1]
    store.put(keys.META, codec.encode_meta(meta))


def build_open_groups(
    data_dir: Path,
    groups: int,
    partitions: int,
    config: MatchConfig,
    progress: Callable[[int], object] | None = None,
    jobs: int = 2,
) -> int:
    """Build ``groups`` open groups into the worker data dir ``data_dir``; returns how many
    are open (every one, unless the build is wrong)."""
    table_dir(data_dir).mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")  # the parent may hold librdkafka threads
    counter: Synchronized[int] = ctx.Value("q", 0)
    with ProcessPoolExecutor(jobs, ctx, initializer=_init_build, initargs=(counter,)) as pool:
        step = 1_000_000
        spans = [(s, min(s + step, groups)) for s in range(0, groups, step)]
        owner = b"".join(
            pool.map(_partitions_of, *zip(*spans, strict=True), [partitions] * len(spans))
        )
        futures = [
            pool.submit(
                _build_partition,
                str(partition_db(data_dir, p)),
                p,
                [i for i, q in enumerate(owner) if q == p],
                dataclasses.asdict(config),
            )
            for p in range(partitions)
        ]
        while not all(f.done() for f in futures):
            time.sleep(0.2)
            if progress is not None:
                progress(counter.value)
        return sum(f.result() for f in futures)


# ---------------------------------------------------------------------------------- the worker


@dataclass(frozen=True, slots=True)
class WorkerMemory:
    open_groups: int
    peak_rss_mb: float  # VmHWM of the worker process after the traffic
    rss_mb: float  # VmRSS then
    traffic: int  # records the worker processed over the state


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def _traffic(
    groups: int, count: int, partitions: int
) -> Iterator[tuple[Side, bytes | None, bytes, int | None]]:
    """``count`` live records over the built state: ledger entries closing spread-out open
    groups and payments opening new ones, after the build's last event time; then heartbeats
    on every partition that release them (and expire nothing)."""
    t = T0 + groups * STEP_MS + 3_600_000
    # Closes groups past the first 2% only: those are the ones time_expiry expires.
    first, span = groups // 50, groups - groups // 50
    if count // 2 > span:
        raise ValueError(f"{count} records of traffic is too many for {groups} open groups")
    stride = span // max(1, count // 2)
    for j in range(count // 2):
        i = first + j * stride
        ref = reference(i)
        ledger = {
            "event_id": f"l{i}", "reference": ref, "amount_minor": amount(i), "currency": "EUR",
            "event_time": t + j, "direction": "credit",
        }  # fmt: skip
        yield Side.LEDGER, ref.encode(), orjson.dumps(ledger), None
        new = f"NEW-{j:09d}"
        payment = {
            "event_id": f"n{j}", "reference": new, "amount_minor": 500 + j % 1000,
            "currency": "EUR", "event_time": t + j, "kind": "payment",
        }  # fmt: skip
        yield Side.PAYMENT, new.encode(), orjson.dumps(payment), None
    beat = orjson.dumps({"event_time": t + count + 3_600_000})
    for p in range(partitions):
        yield Side.PAYMENT, None, beat, p
        yield Side.LEDGER, None, beat, p


def worker_rss(
    base: WorkerSettings,
    groups: int,
    traffic: int,
    *,
    database_url: str,
    work_root: Path,
    progress: Callable[[str, int, int], object] | None = None,
    keep: Callable[[Path], object] | None = None,
) -> WorkerMemory:
    """Build ``groups`` open groups, run a real worker over them with ``traffic`` records, and
    read its RSS. ``keep`` gets the worker's data dir (once it has stopped) for more work."""
    run_id = f"state{uuid.uuid4().hex[:8]}"
    data_dir = work_root / run_id / "worker"
    built = build_open_groups(
        data_dir,
        groups,
        base.partitions,
        base.match,
        None if progress is None else (lambda n: progress("build", n, groups)),
    )
    if built != groups:
        raise RuntimeError(f"built {built} open groups, not {groups}")
    with pipeline(base, database_url, work_root, "recon_bench_state", run_id) as pipe:
        worker = pipe.worker()
        assert worker.proc is not None
        records = list(_traffic(groups, traffic, base.partitions))
        _produce(pipe.settings.kafka, pipe.settings.topics, records)
        port = int(worker.env["RECON_WEB_PORT"])
        deadline = time.monotonic() + 600
        done = 0.0
        while done < len(records):
            if time.monotonic() > deadline or worker.proc.poll() is not None:
                raise RuntimeError(f"worker over {groups} open groups: see {worker.log_path}")
            time.sleep(0.1)
            done = worker_metric(port, "recon_batch_records_sum")
            if progress is not None:
                progress("traffic", int(done), len(records))
        matches = worker_metric(port, "recon_matches_total")
        if matches < traffic // 2:
            raise RuntimeError(f"{matches:.0f} matches over the built state, not {traffic // 2}")
        memory = WorkerMemory(
            groups,
            _status_mb(worker.proc.pid, "VmHWM"),
            _status_mb(worker.proc.pid, "VmRSS"),
            len(records),
        )
    if keep is not None:
        keep(data_dir)
    return memory


def _produce(
    kafka: KafkaSettings,
    topics: TopicNames,
    records: Sequence[tuple[Side, bytes | None, bytes, int | None]],
) -> None:
    producer = Producer(producer_config(kafka))
    names = {Side.PAYMENT: topics.payments, Side.LEDGER: topics.ledger}
    for side, key, value, partition in records:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        producer.produce(names[side], key=key, value=value, **extra)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("traffic not delivered")


# ---------------------------------------------------------------------------------- expiry


@dataclass(frozen=True, slots=True)
class Expiry:
    open_groups: int
    expired: int
    seconds: float

    @property
    def us_per_expired(self) -> float:
        return self.seconds / max(1, self.expired) * 1e6


def time_expiry(
    data_dir: Path, groups: int, settings: WorkerSettings, fraction: float = 0.01
) -> Expiry:
    """Advance every partition's watermark so the first ``fraction`` of the built groups pass
    their deadline; time the batch processor over the worker's RocksDB (open with its options),
    the worker's sweep chunks and output encoding included."""
    config = settings.match
    due = int(groups * fraction)
    cut = T0 + due * STEP_MS + config.match_window_ms + config.allowed_lateness_ms
    beat = orjson.dumps({"event_time": cut})
    topics = TopicNames()
    stores = {
        p: RocksDictStore(partition_db(data_dir, p), worker_options(settings))
        for p in range(settings.partitions)
    }
    try:
        processor = BatchProcessor(
            MatchingEngine(config),
            topics,
            settings.partitions,
            stores.__getitem__,
            sweep_chunk=settings.sweep_chunk,
        )
        records = [
            RawRecord(topic, p, EXPIRY_OFFSET, None, beat)
            for p in range(settings.partitions)
            for topic in (topics.payments, topics.ledger)
        ]
        began = time.perf_counter()
        result = processor.process(records)
        seconds = time.perf_counter() - began
    finally:
        for store in stores.values():
            store.close()
    return Expiry(groups, len(result.exceptions), seconds)


# ---------------------------------------------------------------------------------- restore


@dataclass(frozen=True, slots=True)
class Restore:
    records: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.records / self.seconds


def time_restore(
    data_dir: Path,
    settings: WorkerSettings,
    progress: Callable[[str, int, int], object] | None = None,
    transaction: int = 10_000,
) -> Restore:
    """Write every state record of ``data_dir`` to a fresh compacted changelog topic, in
    transactions of ``transaction`` records as the worker writes it, then time
    :func:`streams.state.recovery.restore` of all partitions into empty RocksDB dirs."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    kafka = settings.kafka
    topic = f"bench.changelog.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka.confluent_config())
    spec = NewTopic(
        topic,
        num_partitions=settings.partitions,
        replication_factor=1,
        config={"cleanup.policy": "compact"},
    )
    admin.create_topics([spec])[topic].result(60)
    try:
        written = _write_changelog(data_dir, settings, topic, transaction, progress)
        with tempfile.TemporaryDirectory(prefix="bench-restore-", dir=data_dir.parent) as tmp:
            stores = {
                p: RocksDictStore(Path(tmp) / f"p{p}", worker_options(settings))
                for p in range(settings.partitions)
            }
            try:
                if progress is not None:
                    progress("restore", 0, written)
                began = time.perf_counter()
                done = restore(kafka, topic, stores, timeout_s=1800)
                seconds = time.perf_counter() - began
            finally:
                for store in stores.values():
                    store.close()
        restored = sum(r.records for r in done)
        if restored != written:
            raise RuntimeError(f"restored {restored} records, not {written}")
        if progress is not None:
            progress("restore", restored, written)
        return Restore(restored, seconds)
    finally:
        admin.delete_topics([topic])[topic].result(60)


def _write_changelog(
    data_dir: Path,
    settings: WorkerSettings,
    topic: str,
    transaction: int,
    progress: Callable[[str, int, int], object] | None,
) -> int:
    producer = Producer(
        {
            **settings.kafka.confluent_config(),
            "transactional.id": f"bench-{uuid.uuid4().hex[:8]}",
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(30)
    written = 0
    for p in range(settings.partitions):
        store = RocksDictStore(partition_db(data_dir, p), worker_options(settings))
        try:
            producer.begin_transaction()
            in_tx = 0
            for key, value in store.scan(b"", b"\xff" * 16):
                if key.startswith(b"__faust"):
                    continue  # Faust's bookkeeping, never in the changelog
                while True:
                    try:
                        producer.produce(topic, key=key, value=value, partition=p)
                        break
                    except BufferError:
                        producer.poll(0.05)
                written += 1
                in_tx += 1
                if in_tx >= transaction:
                    producer.commit_transaction(60)
                    producer.begin_transaction()
                    in_tx = 0
                    if progress is not None:
                        progress("changelog", written, 0)
            producer.commit_transaction(60)
        finally:
            store.close()
    return written


@contextmanager
def _scratch(root: Path) -> Iterator[Path]:
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="state-bench-", dir=root) as tmp:
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--groups", type=int, default=1_000_000)
    parser.add_argument("--traffic", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    base = replace(
        worker_from_env(), partitions=args.partitions, match=MatchConfig(), web_port=free_port()
    )
    kept: list[Path] = []
    with _scratch(Path(".local/bench")) as root:
        memory = worker_rss(
            base,
            args.groups,
            args.traffic,
            database_url=database_url_from_env(),
            work_root=root,
            keep=kept.append,
        )
        print(
            f"worker over {memory.open_groups:,} open groups ({memory.traffic:,} records of "
            f"traffic): peak RSS {memory.peak_rss_mb:,.0f} MB, RSS {memory.rss_mb:,.0f} MB"
        )
        expiry = time_expiry(kept[0], args.groups, base)
        print(
            f"expire 1% of {args.groups:,}: {expiry.expired:,} groups in {expiry.seconds:.2f}s "
            f"({expiry.us_per_expired:,.0f} us each)"
        )
        rest = time_restore(kept[0], base)
        print(f"restore: {rest.records:,} records in {rest.seconds:.2f}s = {rest.rps:,.0f}/s")


if __name__ == "__main__":
    main()

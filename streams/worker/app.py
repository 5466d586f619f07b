"""The Faust application: one agent over both inputs, one RocksDB table, outputs as Avro.

Faust supplies consumption, partition assignment, the RocksDB table and its changelog, and the
web server. Everything else goes through :class:`~streams.worker.processor.BatchProcessor`,
which does not import Faust; partitions are always passed explicitly, never taken from
Faust's ambient ``current_event``.

A batch is one Kafka transaction, or several when it releases a backlog (one per bounded chunk):
its state changes (to the state changelog) and its outputs commit together, then the changes go
to RocksDB, and after its last chunk Faust acks the input records; the steps are
:class:`~streams.worker.checkpoint.Checkpoint`'s. A partition's RocksDB is
restored from the changelog before its first batch after every rebalance.

A batch in flight is finished even when the worker is stopped (SIGTERM, scale-in): Faust acks a
batch's records whenever the agent leaves it, so leaving it half done would commit offsets of
records never applied (docs/delivery.md, "Graceful stops").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust
import orjson
from faust.types import TP
from prometheus_client import generate_latest

from streams.contract.model import Side
from streams.engine.engine import MatchingEngine
from streams.engine.progress import progress
from streams.health import Prober, kafka_probe
from streams.state.base import KeyValueStore
from streams.state.recovery import restore
from streams.state.rocksdict_store import RocksDictStore
from streams.worker import lenient_records, metrics
from streams.worker.checkpoint import Checkpoint, ChunkTransactions
from streams.worker.decoder import input_decoder
from streams.worker.faust_batches import (
    SCHEME,
    PartitionBatch,
    group_membership,
    input_lags,
    partition_db,
)
from streams.worker.heartbeats import IdleTracker, heartbeat_value
from streams.worker.observe import WorkerObserver
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, InputRecord
from streams.worker.refetch import RecordReader
from streams.worker.sender import BatchSender, TransactionalSender
from streams.worker.settings import WorkerSettings
from streams.worker.stop_points import StopPoints
from streams.worker.topics import STATE_TABLE, changelog_topic_name, faust_changelog_topic_name

log = logging.getLogger(__name__)

# The exit status when a batch cannot be made durable (sysexits EX_SOFTWARE).
EXIT_BATCH_FAILED = 70


def _broker_credentials(settings: WorkerSettings) -> Any:
    k = settings.kafka
    if k.sasl_mechanism and k.sasl_username is not None:
        ssl_context = None
        if k.security_protocol.upper().startswith("SASL_SSL"):
            import ssl

            ssl_context = ssl.create_default_context(cafile=k.ssl_cafile)
        return faust.SASLCredentials(
            username=k.sasl_username,
            password=k.sasl_password or "",
            mechanism=k.sasl_mechanism,
            ssl_context=ssl_context,
        )
    if k.security_protocol.upper() == "SSL":
        import ssl

        return ssl.create_default_context(cafile=k.ssl_cafile)
    return None


def _in_thread(start: Any) -> Any:
    """A Faust task that calls ``start`` once the app runs (it starts its own thread)."""

    async def task() -> None:
        start()

    return task


class _App(faust.App):
    """Faust's app, whose stop first lets the batch in flight finish.

    Faust's own stop waits for unacked records only while the consumer holds an assignment (not
    in the middle of a rebalance), and closes the tables' RocksDB before it cancels the agent.
    Waiting here, in the documented ``on_stop`` hook, lets a stop find no batch half done.
    """

    batch_in_flight: asyncio.Future[None] | None = None
    stopping: asyncio.Event | None = None

    async def on_stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()  # a batch waiting on the schema registry gives up (exit 70)
        task = self.batch_in_flight
        if task is not None and not task.done():
            log.info("stopping: waiting for the batch in flight")
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        await super().on_stop()


def create_app(settings: WorkerSettings) -> faust.App:
    # A header key that is not UTF-8 must not crash the fetch (streams/worker/lenient_records.py).
    lenient_records.install()
    hosts = settings.kafka.bootstrap_servers.split(",")
    app = _App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in hosts],
        # Whole partition batches through Faust's consumer (streams/worker/faust_batches.py).
        broker_consumer=[f"{SCHEME}://{host}" for host in hosts],
        broker_max_poll_records=settings.batch_max,
        # Buffered events are partition batches now: a few per partition bound the memory.
        stream_buffer_maxsize=settings.batch_events * 2,
        broker_credentials=_broker_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        consumer_group_instance_id=settings.group_instance_id,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        # Only our pages: Faust's /router and /table pages would show the assignment and raw
        # engine state to anyone who can reach the port.
        web_router_enabled=False,
        web_tables_enabled=False,
        autodiscover=False,
        # Bytes in, bytes out: we encode ourselves. Faust's default JSON value serializer would
        # also be used to read the changelog back during recovery, and fail on every record.
        key_serializer="raw",
        value_serializer="raw",
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    state = app.Table(
        STATE_TABLE,
        # bytes types make Faust use the raw codec for the table and its changelog topic.
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        # Faust assigns and routes the table by this topic; it stays empty, since the state's
        # changelog is transactional and restored by the worker (streams/state/recovery.py).
        changelog_topic=app.topic(
            faust_changelog_topic_name(settings),
            partitions=settings.partitions,
            compacting=True,
            deleting=False,
            internal=True,
            acks=False,
            **raw,
        ),
        options={
            "block_cache_size": settings.rocksdb_block_cache_bytes,
            "block_cache_compressed_size": 0,
            "write_buffer_size": settings.rocksdb_write_buffer_bytes,
            "max_write_buffer_number": 2,
            "max_open_files": 256,
        },
    )
    inputs = app.topic(
        settings.topics.payments, settings.topics.ledger, partitions=settings.partitions, **raw
    )

    engine = MatchingEngine(settings.match)
    idle = IdleTracker(settings.idle_timeout_ms)
    sides = {settings.topics.payments: Side.PAYMENT, settings.topics.ledger: Side.LEDGER}
    topic_of = {Side.PAYMENT: settings.topics.payments, Side.LEDGER: settings.topics.ledger}

    def local_store(partition: int) -> KeyValueStore:
        return RocksDictStore.from_db(partition_db(state, partition))

    changelog = changelog_topic_name(settings)
    sender = TransactionalSender(
        settings.kafka,
        changelog,
        settings.effective_transactional_id,
        settings.transaction_timeout_ms,
    )
    sender_lock = asyncio.Lock()
    sender_ready = False

    async def init_transactions() -> None:
        # Aborts a batch a previous run with this transactional id left open, so the restore's
        # read_committed reads (and the sink's) are not held back until its timeout.
        nonlocal sender_ready
        async with sender_lock:
            if not sender_ready:
                await asyncio.get_running_loop().run_in_executor(None, sender.init)
                sender_ready = True

    app.task(init_transactions)
    transactions = ChunkTransactions(local_store, sender.changelog)
    processor = BatchProcessor(
        engine,
        settings.topics,
        settings.partitions,
        local_store,
        decoder=input_decoder(settings),
        sweep_chunk=settings.sweep_chunk,
        max_event_time_ahead_ms=settings.max_event_time_ahead_ms,
        max_record_bytes=settings.max_record_bytes,
        refetch=RecordReader(settings.kafka, f"{settings.app_id}-refetch").read,
        refetch_limit=settings.batch_max,
        begin=transactions.begin,
    )
    stops = StopPoints(settings.fault_stop_at)
    observer = WorkerObserver()
    observer.lags = lambda: input_lags(app.consumer, sides, observer.processed)
    # Partitions whose RocksDB is known to be at the end of the changelog since the last
    # rebalance; any other must be restored before its next batch. A restore started before
    # a revocation (epoch) marks nothing current: the partition may have moved meanwhile.
    current: set[int] = set()
    restore_lock = asyncio.Lock()
    epoch = 0
    assigned_once = False
    background: set[asyncio.Future[None]] = set()  # held so the loop does not drop them

    def assigned_inputs() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic in sides}

    def report_restored() -> None:
        missing = sorted(assigned_inputs() - current) if assigned_once else None
        if missing is None:
            observer.health.set("restore", False, "waiting for a partition assignment")
        elif missing:
            observer.health.set("restore", False, f"restoring partitions {missing}")
        else:
            observer.health.set("restore", True, f"{len(current)} partitions restored")

    @app.on_partitions_revoked.connect
    async def forget_restored(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        nonlocal epoch
        revoked: set[TP] = args[0] if args else set()
        gone = {tp.partition for tp in revoked if tp.topic in sides}
        epoch += 1
        current.difference_update(gone)
        observer.forget(gone)
        report_restored()

    @app.on_partitions_assigned.connect
    async def restore_assigned(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        # Restore now, not at the first batch, so /ready turns 200 once the state is there
        # even on a quiet input; in a task, so the rebalance is not held up by it.
        nonlocal assigned_once
        assigned_once = True
        report_restored()

        async def restore_in_background() -> None:
            try:
                await restore_partitions(assigned_inputs())
            except Exception as exc:  # the agent restores before its next batch anyway
                log.warning("restore at assignment failed: %s", exc)

        background.add(task := asyncio.ensure_future(restore_in_background()))
        task.add_done_callback(background.discard)

    async def restore_partitions(partitions: set[int]) -> None:
        async with restore_lock:
            stores = {p: local_store(p) for p in sorted(partitions - current)}
            if not stores:
                return
            started_epoch = epoch
            started = time.perf_counter()
            log.info("restoring partitions %s from %s", sorted(stores), changelog)
            observer.restoring(True)
            try:
                done = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: restore(settings.kafka, changelog, stores)
                )
            finally:
                observer.restoring(False)
            if epoch == started_epoch:
                current.update(stores)
            report_restored()
            for r in done:
                metrics.RESTORED_RECORDS.labels(str(r.partition)).inc(r.records)
            log.info(
                "restored %s in %.2fs",
                ", ".join(f"p{r.partition}: {r.records} records {r.start}->{r.end}" for r in done),
                time.perf_counter() - started,
            )

    stopping = app.stopping = asyncio.Event()

    async def restore_batch(records: Sequence[InputRecord]) -> None:
        await init_transactions()
        # Every assigned partition at once (one changelog pass), not one per batch that
        # first brings records of it.
        await restore_partitions({r.partition for r in records} | assigned_inputs())

    checkpoint = Checkpoint(
        sender,
        transactions,
        processor.start,
        restore=restore_batch,
        membership=lambda: group_membership(app.consumer),
        stopping=stopping,
        stops=stops,
        observer=observer,
    )

    async def finish(records: list[InputRecord]) -> None:
        """Process a batch to its end even if the agent is cancelled meanwhile (a stop):
        Faust's take buffer acks a batch's records whenever the agent leaves it, so leaving
        it half done would commit offsets of records never applied."""
        task = app.batch_in_flight = asyncio.ensure_future(checkpoint.process(records))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            stopping.set()
            log.warning("stopping: finishing the batch in flight before it is acked")
            while not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
            task.result()  # a failure exits below, without the ack
            raise

    @app.agent(inputs)
    async def reconcile(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        within = settings.batch_within_ms / 1000
        # Each event is one fetched batch of one input partition (streams/worker/faust_batches.py);
        # a worker batch takes up to batch_events of them, one Kafka transaction.
        async for events in cast(Any, stream).take_events(settings.batch_events, within=within):
            started = time.perf_counter()
            records: list[InputRecord] = []
            now = time.monotonic()
            ends: dict[tuple[str, int], int] = {}
            for e in events:
                message = e.message
                if not isinstance(message, PartitionBatch):
                    # Cannot happen with our transport; raising would let Faust ack it.
                    log.critical("not a partition batch: %r; exiting", type(message))
                    logging.shutdown()
                    os._exit(EXIT_BATCH_FAILED)
                records += message.records
                ends[(message.topic, message.partition)] = message.offset + 1
                metrics.RECORDS_IN.labels(message.topic).inc(len(message.records))
                side = sides.get(message.topic)
                if side is not None:
                    idle.seen(message.partition, side, now)
            stops.batch_started(records)
            try:
                await finish(records)
            except Exception:
                # Never ack a batch that is not durable. Raising would let Faust ack it (the
                # take buffer acks on exit) and commit its offsets on shutdown; exiting leaves
                # the offsets where they are, like a kill -9, which the worker recovers from.
                log.critical("batch failed; exiting without acking it", exc_info=True)
                logging.shutdown()
                os._exit(EXIT_BATCH_FAILED)
            observer.processed.update(ends)
            metrics.BATCH_SIZE.observe(len(records))
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
            yield None

    if settings.idle_timeout_ms > 0:
        # Its own producer: its flushes must not take the agent's delivery reports.
        beats = BatchSender(settings.kafka)

        async def heartbeat_idle_inputs() -> None:
            # A silent input stalls the watermark. Its heartbeat is a real record in that input
            # partition, so a replay sees it too; only the decision to write it uses the clock.
            assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic in sides}
            for partition, side in idle.idle(assigned, time.monotonic()):
                state_now = progress(local_store(partition))
                other = Side.LEDGER if side is Side.PAYMENT else Side.PAYMENT
                event_time = state_now.max_event_time(other) if state_now else None
                if event_time is None:
                    continue
                beats.send(topic_of[side], None, heartbeat_value(event_time), partition)
                idle.seen(partition, side, time.monotonic())
            await asyncio.get_running_loop().run_in_executor(None, beats.flush)

        app.timer(interval=max(settings.idle_timeout_ms / 4000, 0.5))(heartbeat_idle_inputs)

    @app.page("/references/{reference}")
    @app.table_route(table=state, match_info="reference")
    async def reference_view(web: Any, request: Any, reference: str) -> Any:
        partition = partition_for(reference.encode(), settings.partitions)
        groups = engine.lookup(local_store(partition), reference)
        if not groups:
            return web.json({"reference": reference, "error": "unknown reference"}, status=404)
        return web.bytes(
            orjson.dumps({"reference": reference, "partition": partition, "groups": groups}),
            content_type="application/json",
        )

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(metrics.REGISTRY), content_type="text/plain; version=0.0.4"
        )

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        status, body = observer.health.liveness()
        return web.bytes(body, content_type="application/json", status=status)

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        status, body = observer.health.readiness()
        return web.bytes(body, content_type="application/json", status=status)

    prober = Prober(observer.health)
    prober.add("kafka", kafka_probe(settings.kafka))
    app.task(_in_thread(prober.start))
    report_restored()

    return app

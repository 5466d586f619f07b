"""The fuzz corpus through a real worker and sink: :func:`run_fuzz`.

For the end-to-end test (tests/fuzz/test_pipeline.py, a sample) and for a fault-suite
runner (the full corpus)::

    with pipeline(WorkerSettings(kafka=kafka, match=FUZZ_MATCH, partitions=3), url, work, schema) as pipe:
        report = run_fuzz(pipe, kafka, count=10_000, seed=13)
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import psycopg
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.contract.model import Side
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import Pipeline, free_port
from streams.settings import KafkaSettings
from streams.simulate.encoding import encode_value, heartbeat
from streams.simulate.scenarios import START_MS, simulate
from streams.simulate.truth import Truth, truth_of
from streams.simulate.verify_pg import differences, expected_counts, row_counts, table_state
from streams.worker.partitioning import partition_for
from tests.fuzz.corpus import (
    LARGE_PRODUCER_LIMIT,
    REFUSED,
    REGISTRY_SCHEMAS,
    Corpus,
    Item,
    generate,
)
from tests.registry_stub import RegistryStub

#: The match settings the fuzz runs use (those of the pipeline ground-truth tests).
FUZZ_MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)
_DAY_MS = 24 * HOUR_MS

Position = tuple[str, int, int]  # topic, partition, offset


@dataclass
class _Sent:
    """Where each record went, or why it was refused."""

    positions: dict[Position, tuple[str, int]]  # -> ("corpus", item index) | ("sim", record index)
    refused: dict[int, str]  # corpus item index -> the producer's or broker's error


class _Delivery:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: list[tuple[tuple[str, int], Position | None, str | None]] = []

    def callback(self, origin: tuple[str, int]) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            with self.lock:
                if err is not None:
                    self.done.append((origin, None, f"{err.name()}: {err.str()}"))
                else:
                    position = (str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0))
                    self.done.append((origin, position, None))

        return on_delivery


def _producer(kafka: KafkaSettings, **extra: Any) -> Producer:
    return Producer(
        {
            **kafka.confluent_config(),
            # Kafka's murmur2, as Faust: a reference's records share their partition.
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            **extra,
        }
    )


def _partition(item: Item, partitions: int) -> int | None:
    """The partition an item is sent to explicitly; None: the producer's murmur2 (or a random
    partition for a null key)."""
    if not item.wrong_partition:
        return None
    assert item.key is not None
    assert partitions > 1
    return (partition_for(item.key, partitions) + 1) % partitions


def _send(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    headers: Sequence[tuple[bytes, bytes | None]] = (),
    partition: int | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> str | None:
    """Produce one record; the producer's own refusal (too large) as text, else None."""
    kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
    if headers:
        kwargs["headers"] = [(k.decode(), v) for k, v in headers]
    if partition is not None:
        kwargs["partition"] = partition
    while True:
        try:
            producer.produce(topic, **kwargs)
            return None
        except BufferError:
            producer.poll(0.05)
        except KafkaException as exc:
            return f"{exc.args[0].name()}: {exc.args[0].str()}"


class _RawHeaderKey(str):
    """A header key whose bytes are not UTF-8: aiokafka's Python record builder writes
    ``key.encode("utf-8")``, which this returns as the raw bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawHeaderKey:
        obj = super().__new__(cls, raw.decode("utf-8", "replace"))
        obj.raw = raw
        return obj

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


class _RawHeaderProducer:
    """Sends records whose header keys confluent-kafka cannot send (not UTF-8, or with a NUL),
    as a Go or C producer can: through aiokafka with its Python record builder, one record at
    a time, each acknowledged before the next record of the run is produced."""

    def __init__(self, kafka: KafkaSettings) -> None:
        from aiokafka import AIOKafkaProducer

        assert kafka.security_protocol == "PLAINTEXT", "raw-header records: PLAINTEXT only"

        async def start() -> AIOKafkaProducer:
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
            await producer.start()
            return producer

        self._loop = asyncio.new_event_loop()
        self._producer = self._loop.run_until_complete(start())

    def send(self, topic: str, partition: int, item: Item) -> tuple[Position | None, str | None]:
        return self._loop.run_until_complete(self._send(topic, partition, item))

    async def _send(
        self, topic: str, partition: int, item: Item
    ) -> tuple[Position | None, str | None]:
        from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

        batch = self._producer.create_batch()
        batch._builder = _DefaultRecordBatchBuilderPy(
            2,
            0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=0,
            batch_size=LARGE_PRODUCER_LIMIT,
        )
        headers = [(_RawHeaderKey(k), v) for k, v in item.headers]
        batch.append(key=item.key, value=item.value, timestamp=None, headers=headers)
        batch.close()
        try:
            meta = await (await self._producer.send_batch(batch, topic, partition=partition))
        except Exception as exc:  # reported as a refusal of that record
            return None, repr(exc)
        return (topic, int(meta.partition), int(meta.offset)), None

    def close(self) -> None:
        self._loop.run_until_complete(self._producer.stop())
        self._loop.close()


def _send_all(
    pipe: Pipeline,
    kafka: KafkaSettings,
    corpus: Corpus,
    sim_records: Sequence[Any],
    seed: int,
    flush_ms: int,
) -> _Sent:
    topics = pipe.settings.topics
    names = {Side.PAYMENT: topics.payments, Side.LEDGER: topics.ledger}
    partitions = pipe.settings.partitions
    rng = random.Random(seed)
    default = _producer(kafka, **{"enable.idempotence": True, "compression.type": "lz4"})
    # message.max.bytes past the topics' limit: the broker decides on these.
    large = _producer(
        kafka,
        **{"message.max.bytes": LARGE_PRODUCER_LIMIT, "compression.type": "none", "acks": "all"},
    )
    delivery = _Delivery()
    refused: dict[int, str] = {}

    # The simulated records in their order, the bad corpus items at random places among them,
    # then the accepted groups in their order (their event times follow the simulation's, and
    # an accepted record sent out of its order could be late, which changes its outcome).
    plan: list[tuple[float, tuple[str, int]]] = [
        (float(i), ("sim", i)) for i in range(len(sim_records))
    ]
    plan += [(rng.uniform(0, len(sim_records)), ("corpus", i.index)) for i in corpus.items if i.bad]
    plan.sort(key=lambda entry: entry[0])
    order = [origin for _, origin in plan]
    order += [("corpus", i.index) for i in corpus.items if not i.bad]
    raw: _RawHeaderProducer | None = None
    raw_done: list[tuple[int, Position | None, str | None]] = []

    try:
        for origin in order:
            if origin[0] == "sim":
                record = sim_records[origin[1]]
                error = _send(
                    default,
                    names[record.side],
                    record.key,
                    encode_value(record, "json"),
                    partition=None,
                    on_delivery=delivery.callback(origin),
                )
                assert error is None, error
                default.poll(0)
                continue
            item = corpus.items[origin[1]]
            partition = _partition(item, partitions)
            if item.raw_headers:
                # In its place in the run: what was produced before is delivered first.
                assert default.flush(120) == large.flush(120) == 0
                raw = raw or _RawHeaderProducer(kafka)
                if partition is None:
                    partition = (
                        rng.randrange(partitions)
                        if item.key is None
                        else partition_for(item.key, partitions)
                    )
                position, error = raw.send(names[item.side], partition, item)
                raw_done.append((item.index, position, error))
                continue
            producer = large if item.producer == "large" else default
            error = _send(
                producer,
                names[item.side],
                item.key,
                item.value,
                headers=item.headers,
                partition=partition,
                on_delivery=delivery.callback(origin),
            )
            if error is not None:
                refused[item.index] = error
            default.poll(0)
            large.poll(0)
    finally:
        if raw is not None:
            raw.close()
    for p in (default, large):
        remaining = p.flush(120)
        assert remaining == 0, f"{remaining} records not delivered in 120 s"

    positions: dict[Position, tuple[str, int]] = {}
    for origin, position, error in delivery.done:
        if position is None:
            assert origin[0] == "corpus", f"simulated record {origin} refused: {error}"
            refused[origin[1]] = str(error)
        else:
            positions[position] = origin
    for index, position, error in raw_done:
        if position is None:
            refused[index] = str(error)
        else:
            positions[position] = ("corpus", index)

    # Every deadline of the run fires: a heartbeat past the last one on every input partition.
    for partition in range(partitions):
        for topic in names.values():
            error = _send(
                default,
                topic,
                None,
                heartbeat(flush_ms, "json"),
                partition=partition,
                on_delivery=lambda *_: None,
            )
            assert error is None, error
    assert default.flush(60) == 0
    return _Sent(positions, refused)


def combined_truth(a: Truth, b: Truth) -> Truth:
    """Two runs' truths over disjoint references, as one."""
    assert not a.matches.keys() & b.matches.keys()
    assert not a.exceptions.keys() & b.exceptions.keys()
    return Truth(
        matches={**a.matches, **b.matches},
        exceptions={**a.exceptions, **b.exceptions},
        dead_letters=dict(Counter(a.dead_letters) + Counter(b.dead_letters)),
        duplicates_dropped=a.duplicates_dropped + b.duplicates_dropped,
        scenarios={**a.scenarios, **b.scenarios},
        flush_time_ms=max(a.flush_time_ms, b.flush_time_ms),
        inputs=a.inputs + b.inputs,
    )


def _dead_letters(conn: psycopg.Connection[Any]) -> tuple[dict[Position, list[str]], int]:
    rows = conn.execute(
        "SELECT source_topic, source_partition, source_offset, reason FROM recon_dead_letters"
        " WHERE origin = 'worker'"
    ).fetchall()
    out: dict[Position, list[str]] = {}
    for topic, partition, offset, reason in rows:
        out.setdefault((str(topic), int(partition), int(offset)), []).append(str(reason))
    sink_row = conn.execute(
        "SELECT count(*) FROM recon_dead_letters WHERE origin = 'sink'"
    ).fetchone()
    return out, int(sink_row[0]) if sink_row else 0


def _duplicate_rows(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT (SELECT count(*) - count(DISTINCT match_id) FROM recon_matches)"
        " + (SELECT count(*) - count(DISTINCT exception_id) FROM recon_exceptions)"
    ).fetchone()
    return int(row[0]) if row else 0


def _trial_balance(pipe: Pipeline, registry_url: str) -> list[str]:
    """``recon verify`` on the run: every input in exactly one place (its findings)."""
    from connectors.postgres.settings import sink_settings_from_env
    from streams.local_runner import env_for
    from streams.ops.verify_command import trial_balance

    worker = replace(pipe.settings, schema_registry_url=registry_url)
    sink = sink_settings_from_env(
        env_for(worker, pipe.work_dir / "verify", pipe.schema, pipe.database_url)
    )
    verdict = trial_balance(worker, sink, wait_s=60, progress=False)
    return [str(f) for f in verdict.findings]


def run_fuzz(
    pipe: Pipeline,
    kafka: KafkaSettings,
    count: int,
    seed: int,
    *,
    valid: int | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Send ``count`` bad records of the fuzz corpus (``generate(count, seed)``, with the
    accepted groups that come with them) mixed with ``valid`` simulated records (default
    ``count``; ``simulate(valid, seed=seed)``), through one worker and one sink, and compare
    PostgreSQL with what the corpus and the simulation expect.

    ``pipe`` is a fresh :func:`streams.local_runner.pipeline` (its topics and schema, no process
    started yet) whose ``settings.match`` is :data:`FUZZ_MATCH` (or any config: the expected
    outcomes do not depend on the tolerance) and with at least 2 partitions. ``run_fuzz``
    starts a schema-registry stub serving :data:`tests.fuzz.corpus.REGISTRY_SCHEMAS`, one worker
    (``SCHEMA_REGISTRY_URL`` set to it, its web server on a free port) and one sink in ``pipe``;
    it never restarts them, and ``pipe`` stops them on exit. ``kafka`` must be PLAINTEXT
    (records with raw header bytes are sent through aiokafka). It waits until PostgreSQL holds
    the expected number of rows, at most ``timeout`` seconds, or until the worker exits.

    Returns:

    * ``sent``: records delivered to the input topics: ``valid_sent + bad_sent`` (the final
      heartbeats, one per input partition, not counted);
    * ``valid_sent``: of those, records valid by the contract (simulated and corpus);
    * ``bad_sent``: of those, records that must be dead-lettered (corpus and the simulation's
      invalid ones);
    * ``refused``: corpus records the producer or the broker refused, all of them expected
      (``REFUSED``: over the size limits);
    * ``lost``: records without their outcome: bad records with no dead letter, expected
      matches and exceptions missing from PostgreSQL, and records refused unexpectedly;
    * ``doubled``: dead letters beyond one per source record, and match or exception ids in
      more than one row;
    * ``wrong_reason``: records dead-lettered with another reason than expected, valid records
      dead-lettered, dead letters of no record sent, and dead letters written by the sink
      (``origin = 'sink'``: an output it could not store);
    * ``dead_lettered``: the worker's dead letters in PostgreSQL; ``by_reason``: them by reason;
      ``expected_by_reason``: what the corpus and the simulation expect;
    * ``worker_exits``: 1 if the worker process exited during the run, else 0;
    * ``verify_findings``: imbalances ``recon verify`` (the trial balance) finds in the run;
    * ``problems``: up to 20 lines naming what differs (empty when all is as expected);
    * ``categories``: bad records sent by corpus category; ``raw_header_records``: records
      sent with header keys confluent-kafka cannot send; ``seconds``: the run's duration.
    """
    started = time.monotonic()
    if valid is None:
        valid = count
    match = pipe.settings.match
    sim = simulate(valid, seed=seed, config=match)
    corpus = generate(
        count, seed, start_ms=sim.max_event_time_ms + 60_000, heartbeat_ms=START_MS - _DAY_MS
    )
    truth = combined_truth(truth_of(sim), truth_of(corpus.simulation()))
    flush_ms = max(
        sim.flush_time_ms,
        corpus.last_event_ms + match.match_window_ms + match.allowed_lateness_ms + 60_000,
    )
    stub = RegistryStub()
    stub.schemas.update(REGISTRY_SCHEMAS)
    problems: list[str] = []
    try:
        worker = pipe.worker(web_port=free_port(), extra_env={"SCHEMA_REGISTRY_URL": stub.url})
        pipe.sink()
        sent = _send_all(pipe, kafka, corpus, sim.records, seed, flush_ms)

        unexpected_refusals = {
            i: e for i, e in sent.refused.items() if corpus.items[i].expected != REFUSED
        }
        never_refused = [
            i.index for i in corpus.items if i.expected == REFUSED and i.index not in sent.refused
        ]
        for index, error in list(unexpected_refusals.items())[:5]:
            item = corpus.items[index]
            problems.append(f"refused {item.category}/{item.case} #{index}: {error}")
        for index in never_refused[:5]:
            item = corpus.items[index]
            problems.append(
                f"not refused: {item.category}/{item.case} #{index} ({item.size} bytes)"
            )
        if unexpected_refusals:
            # What was not delivered cannot be dead-lettered: expect what was.
            delivered = Counter(
                corpus.items[i].expected for i in unexpected_refusals if corpus.items[i].bad
            )
            truth = combined_truth(
                truth,
                Truth({}, {}, {k: -v for k, v in delivered.items()}, 0, {}, 0, 0),
            )

        want = expected_counts(truth)
        exited = False
        deadline = time.monotonic() + timeout
        got: tuple[int, ...] = ()
        with pipe.pg() as conn:
            while time.monotonic() < deadline:
                if worker.proc is None or worker.proc.poll() is not None:
                    exited = True
                    break
                try:
                    got = row_counts(conn)
                except psycopg.Error:
                    got = ()
                if got == want:
                    break
                time.sleep(0.5)
            if got != want:
                problems.append(
                    f"rows (matches, exceptions, resolved, dead letters): want {want}, got {got}"
                )
            # The worker is still alive at the end, or it exited (and nobody restarted it).
            if worker.proc is None or worker.proc.poll() is not None:
                exited = True
            matches, exceptions, _ = table_state(conn)
            dead, sink_dead = _dead_letters(conn)
            doubled = _duplicate_rows(conn)
            problems += differences(truth, conn)
        verify_findings = _trial_balance(pipe, stub.url) if not exited else []
        problems += [f"recon verify: {f}" for f in verify_findings[:5]]
    finally:
        stub.close()

    sim_invalid = sum(sim.dead_letters.values())
    lost = len(unexpected_refusals)
    wrong_reason = sink_dead
    categories: Counter[str] = Counter()
    valid_sent = bad_sent = 0
    for position, origin in sent.positions.items():
        reasons = dead.pop(position, [])
        doubled += max(0, len(reasons) - 1)
        if origin[0] == "sim":
            # The simulation's invalid records are counted by reason (differences above).
            continue
        item = corpus.items[origin[1]]
        if item.bad:
            bad_sent += 1
            categories[item.category] += 1
            if not reasons:
                lost += 1
                problems.append(
                    f"no dead letter: {item.category}/{item.case} #{item.index} at {position}"
                )
            elif reasons[0] != item.expected:
                wrong_reason += 1
                problems.append(
                    f"{item.category}/{item.case} #{item.index}: {reasons[0]}, expected {item.expected}"
                )
        else:
            valid_sent += 1
            if reasons:
                wrong_reason += 1
                problems.append(
                    f"valid {item.category}/{item.case} #{item.index} dead-lettered: {reasons}"
                )
    sim_sent = sum(1 for origin in sent.positions.values() if origin[0] == "sim")
    bad_sent += sim_invalid
    valid_sent += sim_sent - sim_invalid
    for position, reasons in list(dead.items())[:5]:
        problems.append(f"dead letter of no record sent: {position} {reasons}")
    wrong_reason += len(dead)
    if sink_dead:
        problems.append(
            f"{sink_dead} dead letters written by the sink (outputs it could not store)"
        )
    lost += len(truth.matches.keys() - matches.keys()) + len(
        truth.exceptions.keys() - exceptions.keys()
    )
    with pipe.pg() as conn:
        by_reason = Counter(
            {
                str(reason): cast(int, n)
                for reason, n in conn.execute(
                    "SELECT reason, count(*) FROM recon_dead_letters WHERE origin = 'worker'"
                    " GROUP BY reason"
                )
            }
        )
    return {
        "sent": valid_sent + bad_sent,
        "valid_sent": valid_sent,
        "bad_sent": bad_sent,
        "refused": len(sent.refused) - len(unexpected_refusals),
        "lost": lost,
        "doubled": doubled,
        "wrong_reason": wrong_reason,
        "dead_lettered": sum(by_reason.values()),
        "by_reason": dict(sorted(by_reason.items())),
        "expected_by_reason": dict(sorted((k, v) for k, v in truth.dead_letters.items() if v)),
        "worker_exits": int(exited),
        "verify_findings": len(verify_findings),
        "problems": problems[:20],
        "categories": dict(sorted(categories.items())),
        "raw_header_records": sum(
            1
            for origin in sent.positions.values()
            if origin[0] == "corpus" and corpus.items[origin[1]].raw_headers
        ),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.fuzz.run [--count N] [--seed S] [--valid N]``: one run on the local
    broker and database (RECON_KAFKA_PORT, RECON_PG_PORT, or KAFKA_BOOTSTRAP_SERVERS and
    DATABASE_URL); prints the report as JSON; exit 1 unless it is clean."""
    import argparse
    import json
    import tempfile
    import uuid
    from pathlib import Path

    from streams.local_runner import pipeline
    from streams.settings import database_url_from_env, kafka_from_env
    from streams.worker.settings import WorkerSettings
    from tests.fuzz.corpus import DEFAULT_COUNT, DEFAULT_SEED

    parser = argparse.ArgumentParser(description="the fuzz corpus through a worker and a sink")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--valid", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    kafka = kafka_from_env()
    base = WorkerSettings(kafka=kafka, match=FUZZ_MATCH, partitions=3)
    with tempfile.TemporaryDirectory(prefix="recon-fuzz-") as work:
        schema = f"fuzz_{uuid.uuid4().hex[:10]}"
        with pipeline(base, database_url_from_env(), Path(work), schema) as pipe:
            report = run_fuzz(
                pipe, kafka, args.count, args.seed, valid=args.valid, timeout=args.timeout
            )
    print(json.dumps(report, indent=2))
    clean = (
        not report["problems"]
        and report["worker_exits"] == report["lost"] == report["doubled"] == 0
        and report["wrong_reason"] == 0
    )
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())

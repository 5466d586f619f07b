"""Helpers for the sink tests: hand-built output records, producing, reading the tables back."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.postgres.rows import datetime_to_ms
from connectors.postgres.run import run_sink
from connectors.postgres.settings import SinkSettings, sink_settings_from_env
from streams.contract.codec import encode_dead_letter, encode_exception, encode_match
from streams.contract.dead_letters import bounded_dead_letter
from streams.contract.model import (
    DeadLetter,
    ExceptionKind,
    ExceptionRecord,
    ExceptionStatus,
    Flow,
    MatchRecord,
    Rule,
)
from streams.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY_MS = 86_400_000

Output = MatchRecord | ExceptionRecord | DeadLetter


def make_match(i: int, rng: random.Random, *, time_ms: int | None = None) -> MatchRecord:
    pay = rng.randrange(1, 10**9)
    led = pay + rng.choice((0, 0, -3, 7))
    first = time_ms if time_ms is not None else BASE_MS + rng.randrange(0, 60) * DAY_MS + i
    return MatchRecord(
        match_id=f"m-{i:06d}-{uuid.uuid4().hex[:6]}",
        reference=f"REF-{rng.randrange(10**6):06d}",
        flow=rng.choice(list(Flow)),
        rule=rng.choice(list(Rule)),
        currency=rng.choice(("EUR", "USD", "JPY")),
        payment_amount_minor=pay,
        ledger_amount_minor=led,
        difference_minor=led - pay,
        payment_event_ids=tuple(f"p-{i}-{k}" for k in range(rng.randrange(1, 4))),
        ledger_event_ids=tuple(f"l-{i}-{k}" for k in range(rng.randrange(1, 3))),
        first_event_time_ms=first,
        matched_at_ms=first + rng.randrange(1, 10**7),
        exception_id=rng.choice((None, f"x-{i}")),
    )


def make_exception(i: int, rng: random.Random) -> ExceptionRecord:
    kind = rng.choice(list(ExceptionKind))
    raised = BASE_MS + rng.randrange(0, 60) * DAY_MS + 17 * i
    return ExceptionRecord(
        exception_id=f"e-{i:06d}-{uuid.uuid4().hex[:6]}",
        reference=f"REF-{rng.randrange(10**6):06d}",
        flow=rng.choice(list(Flow)),
        kind=kind,
        status=ExceptionStatus.OPEN,
        currency="EUR",
        ledger_currency="USD" if kind is ExceptionKind.CURRENCY_MISMATCH else None,
        payment_amount_minor=rng.randrange(0, 10**12),
        ledger_amount_minor=rng.randrange(0, 10**12),
        payment_event_ids=tuple(f"p-{i}-{k}" for k in range(rng.randrange(0, 3))),
        ledger_event_ids=tuple(f"l-{i}-{k}" for k in range(rng.randrange(0, 3))),
        raised_at_ms=raised,
        resolved_at_ms=None,
        detail=f"detail {i} ünïcode",
    )


def resolve(e: ExceptionRecord) -> ExceptionRecord:
    return replace(e, status=ExceptionStatus.RESOLVED, resolved_at_ms=e.raised_at_ms + 12_345)


def make_dead_letter(i: int, rng: random.Random) -> DeadLetter:
    return bounded_dead_letter(
        rng.choice(("payments", "ledger")),
        rng.randrange(3),
        i,
        f"REF-{i}".encode(),
        rng.randbytes(rng.randrange(0, 40)),
        rng.choice(("BAD_JSON", "UNKNOWN_CURRENCY")),
        f"rejected {i}",
    )


def encode(record: Output) -> bytes:
    if isinstance(record, MatchRecord):
        return encode_match(record)
    if isinstance(record, ExceptionRecord):
        return encode_exception(record)
    return encode_dead_letter(record)


def key_of(record: Output) -> bytes | None:
    return record.key if isinstance(record, DeadLetter) else record.reference.encode()


@dataclass
class Dataset:
    """Records produced so far and the table contents they should lead to."""

    matches: dict[str, MatchRecord] = field(default_factory=dict)
    exceptions: dict[str, ExceptionRecord] = field(default_factory=dict)
    dead_letters: set[DeadLetter] = field(default_factory=set)

    def add(self, record: Output) -> None:
        if isinstance(record, MatchRecord):
            self.matches.setdefault(record.match_id, record)
        elif isinstance(record, ExceptionRecord):
            old = self.exceptions.get(record.exception_id)
            if old is None or old.status is not ExceptionStatus.RESOLVED:
                self.exceptions[record.exception_id] = record
        else:
            self.dead_letters.add(record)


@dataclass(frozen=True)
class Topics:
    matched: str
    exceptions: str
    dlq: str

    def topic_for(self, record: Output) -> str:
        if isinstance(record, MatchRecord):
            return self.matched
        if isinstance(record, ExceptionRecord):
            return self.exceptions
        return self.dlq

    def all(self) -> tuple[str, str, str]:
        return (self.matched, self.exceptions, self.dlq)


def producer(kafka: KafkaSettings) -> Producer:
    # Same partitioner as the worker's (murmur2), so one reference stays on one partition.
    return Producer(
        kafka.confluent_config() | {"partitioner": "murmur2_random", "linger.ms": 5, "acks": "all"}
    )


def produce(
    kafka: KafkaSettings, topics: Topics, records: Sequence[Output], dataset: Dataset | None = None
) -> None:
    p = producer(kafka)
    for r in records:
        p.produce(topics.topic_for(r), encode(r), key=key_of(r))
        p.poll(0)
        if dataset is not None:
            dataset.add(r)
    assert p.flush(30) == 0


def produce_raw(kafka: KafkaSettings, topic: str, value: bytes, key: bytes = b"raw") -> None:
    p = producer(kafka)
    p.produce(topic, value, key=key)
    assert p.flush(30) == 0


def connect(database_url: str, schema: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(database_url, options=f"-csearch_path={schema}", autocommit=True)


def read_tables(database_url: str, schema: str) -> Dataset:
    out = Dataset()
    with connect(database_url, schema) as conn:
        for r in conn.execute(
            "SELECT match_id, reference, flow, rule, currency, payment_amount_minor,"
            " ledger_amount_minor, difference_minor, payment_event_ids, ledger_event_ids,"
            " first_event_time, matched_at, exception_id FROM recon_matches"
        ):
            m = MatchRecord(
                r[0], r[1], Flow(r[2]), Rule(r[3]), r[4], r[5], r[6], r[7],  # type: ignore[arg-type]
                tuple(r[8]), tuple(r[9]),  # type: ignore[call-overload]
                datetime_to_ms(r[10]), datetime_to_ms(r[11]), r[12],  # type: ignore[arg-type]
            )  # fmt: skip
            assert m.match_id not in out.matches, "duplicate match row"
            out.matches[m.match_id] = m
        for r in conn.execute(
            "SELECT exception_id, reference, flow, kind, status, currency, ledger_currency,"
            " payment_amount_minor, ledger_amount_minor, payment_event_ids, ledger_event_ids,"
            " raised_at, resolved_at, detail FROM recon_exceptions"
        ):
            e = ExceptionRecord(
                r[0], r[1], Flow(r[2]), ExceptionKind(r[3]), ExceptionStatus(r[4]),  # type: ignore[arg-type]
                r[5], r[6], r[7], r[8], tuple(r[9]), tuple(r[10]),  # type: ignore[arg-type, call-overload]
                datetime_to_ms(r[11]),  # type: ignore[arg-type]
                None if r[12] is None else datetime_to_ms(r[12]),  # type: ignore[arg-type]
                r[13],  # type: ignore[arg-type]
            )  # fmt: skip
            assert e.exception_id not in out.exceptions, "duplicate exception row"
            out.exceptions[e.exception_id] = e
        rows = conn.execute(
            "SELECT source_topic, source_partition, source_offset, key, value, reason, detail,"
            " key_size, value_size, key_sha256, value_sha256"
            " FROM recon_dead_letters WHERE origin = 'worker'"
        ).fetchall()
        out.dead_letters = {DeadLetter(*r) for r in rows}  # type: ignore[arg-type]
        assert len(out.dead_letters) == len(rows), "duplicate dead letter row"
    return out


def assert_tables_equal(database_url: str, schema: str, expected: Dataset) -> None:
    got = read_tables(database_url, schema)
    assert got.matches == expected.matches
    assert got.exceptions == expected.exceptions
    assert got.dead_letters == expected.dead_letters


def high_watermarks(kafka: KafkaSettings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    c = Consumer(kafka.confluent_config() | {"group.id": f"probe-{uuid.uuid4().hex[:6]}"})
    try:
        out: dict[tuple[str, int], int] = {}
        md = c.list_topics(timeout=10)
        for t in topics:
            for p in md.topics[t].partitions:
                _, high = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                out[(t, p)] = high
        return out
    finally:
        c.close()


def stored_offsets(database_url: str, schema: str, group: str) -> dict[tuple[str, int], int]:
    try:
        with connect(database_url, schema) as conn:
            rows = conn.execute(
                "SELECT topic, partition, last_offset FROM recon_sink_offsets"
                " WHERE consumer_group = %s",
                [group],
            ).fetchall()
    except psycopg.Error:
        return {}
    return {(str(t), int(p)): int(o) for t, p, o in rows}  # type: ignore[call-overload]


def wait_caught_up(
    kafka: KafkaSettings,
    database_url: str,
    schema: str,
    group: str,
    topics: Topics,
    *,
    timeout: float = 60,
    alive: Callable[[], None] | None = None,
) -> None:
    """Until the offsets table says every message on the topics has been written."""
    highs = {k: v for k, v in high_watermarks(kafka, topics.all()).items() if v > 0}
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        stored = stored_offsets(database_url, schema, group)
        if all(stored.get(k, -1) == h - 1 for k, h in highs.items()):
            assert set(stored) <= set(highs) | {k for k in stored if k[0] in topics.all()}
            return
        if time.monotonic() > deadline:
            pytest.fail(f"sink did not catch up: stored={stored} highs={highs}")
        time.sleep(0.1)


@dataclass(frozen=True)
class SinkEnv:
    kafka: KafkaSettings
    database_url: str
    schema: str
    group: str
    topics: Topics

    def environ(self, **extra: str) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "RECON_PG_SCHEMA": self.schema,
            "RECON_SINK_GROUP_ID": self.group,
            "RECON_TOPIC_MATCHED": self.topics.matched,
            "RECON_TOPIC_EXCEPTIONS": self.topics.exceptions,
            "RECON_TOPIC_DLQ": self.topics.dlq,
            "RECON_SINK_SESSION_TIMEOUT": "6s",
            "RECON_SINK_RETRY_BACKOFF_MAX": "2s",
            **extra,
        }

    def settings(self, **extra: str) -> SinkSettings:
        return sink_settings_from_env(self.environ(**extra))

    def wait_caught_up(self, timeout: float = 60, alive: Callable[[], None] | None = None) -> None:
        wait_caught_up(
            self.kafka,
            self.database_url,
            self.schema,
            self.group,
            self.topics,
            timeout=timeout,
            alive=alive,
        )

    @contextmanager
    def in_process(self, **extra: str) -> Iterator[None]:
        """Run the sink in a thread of this process; stop it as SIGTERM would, expect exit 0."""
        stop = threading.Event()
        codes: list[int] = []
        thread = threading.Thread(
            target=lambda: codes.append(run_sink(self.settings(**extra), stop)), daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(60)
        assert codes == [0]

    def subprocess(self, **extra: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.environ(**extra)}
        return subprocess.Popen(
            [sys.executable, "-m", "connectors.postgres", "--log-level", "WARNING"],
            cwd=ROOT,
            env=env,
        )


@pytest.fixture
def sink_env(
    kafka: KafkaSettings,
    new_topic: Callable[..., str],
    database_url: str,
    pg_schema: str,
) -> SinkEnv:
    topics = Topics(new_topic("matched"), new_topic("exceptions"), new_topic("dlq"))
    return SinkEnv(kafka, database_url, pg_schema, f"sink-{uuid.uuid4().hex[:8]}", topics)

"""The PostgreSQL sink against the real broker and the real server.

Each test has its own topics, consumer group and PostgreSQL schema (see ``sink_env``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import replace

import pytest

from connectors.postgres.partitions import current_month, month_from_index, month_index
from streams.contract.decode import Rejection, RejectReason, dead_letter, decode_input
from streams.contract.model import ExceptionKind, ExceptionStatus, Side
from streams.local_runner import free_port
from tests.ci_support import ROOT
from tests.connectors.conftest import (
    Dataset,
    Output,
    SinkEnv,
    connect,
    high_watermarks,
    make_dead_letter,
    make_exception,
    make_match,
    produce,
    produce_raw,
    resolve,
    stored_offsets,
)
from tests.pipeline_support import http_get, wait_for_status

PG_SCRIPT = ROOT / ".ci" / "postgres.sh"


def _mixed(rng: random.Random, n: int, start: int = 0) -> list[Output]:
    """Matches, exceptions (a third resolved later, some resolved *before* open) and dead letters."""
    out: list[Output] = []
    for i in range(start, start + n):
        kind = i % 10
        if kind < 5:
            out.append(make_match(i, rng))
        elif kind < 8:
            e = make_exception(i, rng)
            if kind == 5:
                out += [e, resolve(e)]
            elif kind == 6 and i % 20 == 6:
                out += [resolve(e), e]  # resolved arrives first: must stay resolved
            else:
                out.append(e)
        else:
            out.append(make_dead_letter(i, rng))
    return out


def test_rows_equal_records_resend_adds_nothing_poison_and_partitions(sink_env: SinkEnv) -> None:
    rng = random.Random(1)
    expected = Dataset()
    records = _mixed(rng, 600)
    now = month_index(current_month())
    old_month = month_from_index(now - 40)  # inside the window, not pre-created
    old = make_match(10_001, rng, time_ms=_month_start_ms(old_month) + 5)
    far = make_match(10_002, rng, time_ms=_month_start_ms((2300, 6)))  # outside: DEFAULT
    records += [old, far]
    produce(sink_env.kafka, sink_env.topics, records, expected)
    produce_raw(sink_env.kafka, sink_env.topics.matched, b"\x00garbage\xff")
    unknown = b"\xc3\x01" + bytes(8) + b"body"
    produce_raw(sink_env.kafka, sink_env.topics.exceptions, unknown)
    # A valid Match whose currency PostgreSQL cannot store as char(3): dead letter, batch goes on.
    bad = make_match(10_003, rng)
    produce(
        sink_env.kafka, sink_env.topics, [bad.__class__(**{**_asdict(bad), "currency": "EURO"})]
    )

    with sink_env.in_process(RECON_SINK_BATCH_SIZE="250"):
        sink_env.wait_caught_up()
        _assert_equal(sink_env, expected)
        # Re-sending every output message twice adds no row.
        produce(sink_env.kafka, sink_env.topics, records + records)
        sink_env.wait_caught_up()

    _assert_equal(sink_env, expected)
    with connect(sink_env.database_url, sink_env.schema) as conn:
        sink_rows = conn.execute(
            "SELECT reason, source_topic, value FROM recon_dead_letters WHERE origin = 'sink'"
            " ORDER BY reason"
        ).fetchall()
        assert sink_rows == [
            ("BAD_AVRO", sink_env.topics.matched, b"\x00garbage\xff"),
            ("INVALID_RECORD", sink_env.topics.matched, sink_rows[1][2]),
            ("UNKNOWN_SCHEMA", sink_env.topics.exceptions, unknown),
        ]
        where = dict(
            conn.execute(
                "SELECT match_id, tableoid::regclass::text FROM recon_matches"
                " WHERE match_id = ANY(%s)",
                [[old.match_id, far.match_id]],
            ).fetchall()
        )
        assert where[old.match_id] == f"recon_matches_p{old_month[0]:04d}{old_month[1]:02d}"
        assert where[far.match_id] == "recon_matches_default"
        status = conn.execute(
            "SELECT status, count(*) FROM recon_exceptions GROUP BY status ORDER BY status"
        ).fetchall()
    assert dict(status) == {  # type: ignore[arg-type]
        s.value: sum(1 for e in expected.exceptions.values() if e.status is s)
        for s in ExceptionStatus
    }


def test_bounded_dead_letters_store_their_sizes_and_digests(sink_env: SinkEnv) -> None:
    """A ~1 MB rejected input arrives as a bounded worker dead letter with the true size and
    SHA-256 of the full bytes; an oversized record the sink cannot read is bounded the same way."""
    big = b"{" + b"x" * 999_999
    rejected = decode_input(Side.PAYMENT, b"REF-big", big, 4)
    empty = decode_input(Side.LEDGER, None, b"", 5)
    assert isinstance(rejected, Rejection)
    assert isinstance(empty, Rejection)
    assert rejected.reason is RejectReason.BAD_JSON
    expected = Dataset()
    produce(
        sink_env.kafka,
        sink_env.topics,
        [
            dead_letter("payments", 1, 4, b"REF-big", big, rejected),
            dead_letter("ledger", 0, 5, None, b"", empty),
        ],
        expected,
    )
    garbage = b"\x00" + bytes(range(256)) * 3500  # 896,001 bytes, not Avro
    produce_raw(sink_env.kafka, sink_env.topics.matched, garbage, key=b"K" * 70_000)

    with sink_env.in_process():
        sink_env.wait_caught_up()
    _assert_equal(sink_env, expected)

    with connect(sink_env.database_url, sink_env.schema) as conn:
        rows = conn.execute(
            "SELECT origin, source_offset, reason, key, value, key_size, value_size,"
            " key_sha256, value_sha256 FROM recon_dead_letters ORDER BY origin, source_offset"
        ).fetchall()
    assert rows == [
        ("sink", 0, "BAD_AVRO", b"K" * 65_536, garbage[:65_536], 70_000, 896_001,
         _sha(b"K" * 70_000), _sha(garbage)),
        ("worker", 4, "BAD_JSON", b"REF-big", b"{" + b"x" * 65_535, 7, 1_000_000,
         _sha(b"REF-big"), _sha(big)),
        ("worker", 5, "BAD_JSON", None, b"", None, 0, None, _sha(b"")),
    ]  # fmt: skip


def test_amount_overflow_and_group_limit_exceptions_are_stored(sink_env: SinkEnv) -> None:
    rng = random.Random(5)
    expected = Dataset()
    records: list[Output] = []
    for i, kind in enumerate((ExceptionKind.AMOUNT_OVERFLOW, ExceptionKind.GROUP_LIMIT)):
        monthly = replace(make_exception(i, rng), kind=kind, ledger_currency=None)
        default = replace(
            make_exception(10 + i, rng),
            kind=kind,
            ledger_currency=None,
            raised_at_ms=_month_start_ms((2300, 1)),  # outside the window: DEFAULT
        )
        records += [monthly, default, resolve(monthly)]
    produce(sink_env.kafka, sink_env.topics, records, expected)
    with sink_env.in_process():
        sink_env.wait_caught_up()
    _assert_equal(sink_env, expected)
    with connect(sink_env.database_url, sink_env.schema) as conn:
        stored = conn.execute(
            "SELECT kind, status, tableoid::regclass::text = 'recon_exceptions_default'"
            " FROM recon_exceptions ORDER BY 1, 2, 3"
        ).fetchall()
        sink_dead = conn.execute("SELECT count(*) FROM recon_dead_letters").fetchone()
    assert stored == [
        ("AMOUNT_OVERFLOW", "open", True),
        ("AMOUNT_OVERFLOW", "resolved", False),
        ("GROUP_LIMIT", "open", True),
        ("GROUP_LIMIT", "resolved", False),
    ]
    assert sink_dead == (0,)


def test_resolved_wins_whatever_the_order_across_batches(sink_env: SinkEnv) -> None:
    rng = random.Random(2)
    a, b = make_exception(1, rng), make_exception(2, rng)
    expected = Dataset()
    with sink_env.in_process(RECON_SINK_LINGER="20ms"):
        produce(sink_env.kafka, sink_env.topics, [resolve(a), b], expected)
        sink_env.wait_caught_up()
        produce(sink_env.kafka, sink_env.topics, [a], expected)  # late open after resolved
        sink_env.wait_caught_up()
        produce(sink_env.kafka, sink_env.topics, [resolve(b)], expected)  # open, then resolved
        sink_env.wait_caught_up()
    assert expected.exceptions[a.exception_id].status is ExceptionStatus.RESOLVED
    assert expected.exceptions[b.exception_id].status is ExceptionStatus.RESOLVED
    _assert_equal(sink_env, expected)


def test_kill_9_mid_batch_five_times_then_restart(sink_env: SinkEnv) -> None:
    rng = random.Random(3)
    expected = Dataset()
    extra = {"RECON_SINK_BATCH_SIZE": "300", "RECON_SINK_INSTANCE_ID": "sink-0"}
    progress: list[int] = []
    totals: list[int] = []
    for round_ in range(5):
        # Fresh load each round, so every kill lands while the sink is busy writing.
        produce(
            sink_env.kafka, sink_env.topics, _mixed(rng, 10_000, start=round_ * 10_000), expected
        )
        before = sum(
            stored_offsets(sink_env.database_url, sink_env.schema, sink_env.group).values()
        )
        proc = sink_env.subprocess(**extra)
        try:
            _wait_progress(sink_env, after=before, timeout=30)
            time.sleep(rng.uniform(0.0, 0.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        progress.append(
            sum(stored_offsets(sink_env.database_url, sink_env.schema, sink_env.group).values())
        )
        totals.append(
            sum(h - 1 for h in high_watermarks(sink_env.kafka, sink_env.topics.all()).values())
        )
    assert any(p < t for p, t in zip(progress, totals, strict=True)), "no kill hit a busy sink"
    proc = sink_env.subprocess(**extra)
    try:
        sink_env.wait_caught_up(timeout=90, alive=lambda: _alive(proc))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_equal(sink_env, expected)
    highs = high_watermarks(sink_env.kafka, sink_env.topics.all())
    stored = stored_offsets(sink_env.database_url, sink_env.schema, sink_env.group)
    assert stored == {k: h - 1 for k, h in highs.items() if h > 0}
    assert progress == sorted(progress), "stored offsets never go back"


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="stops the local PostgreSQL of .ci/postgres.sh"
)
def test_postgres_outage_pauses_and_recovers_without_loss(sink_env: SinkEnv) -> None:
    """Also the sink's readiness: /ready is 503 naming PostgreSQL while it is down and 200
    once it is back; /health stays 200 throughout (a restart would not bring it back)."""
    rng = random.Random(4)
    expected = Dataset()
    produce(sink_env.kafka, sink_env.topics, _mixed(rng, 3000), expected)
    port = free_port()
    proc = sink_env.subprocess(
        RECON_SINK_BATCH_SIZE="500",
        RECON_SINK_RETRY_BACKOFF_MAX="1s",
        RECON_SINK_HTTP_PORT=str(port),
    )
    errors: list[BaseException] = []
    done = threading.Event()

    def load() -> None:  # keeps producing through the outage
        try:
            i = 3000
            while not done.is_set():
                produce(sink_env.kafka, sink_env.topics, _mixed(rng, 200, start=i), expected)
                i += 200
                time.sleep(0.2)
        except BaseException as exc:
            errors.append(exc)

    loader = threading.Thread(target=load)
    try:
        sink_env.wait_caught_up(timeout=30, alive=lambda: _alive(proc))
        ready = wait_for_status(port, "/ready", 200, 30, lambda: _alive(proc))
        assert {name: c["ok"] for name, c in ready["checks"].items()} == {
            "kafka": True,
            "postgres": True,
            "migrations": True,
        }
        loader.start()
        time.sleep(1.0)
        subprocess.run([str(PG_SCRIPT), "down"], check=True)
        try:
            down = wait_for_status(port, "/ready", 503, 15, lambda: _alive(proc))
            assert down["checks"]["postgres"]["ok"] is False
            assert down["checks"]["kafka"]["ok"] is True
            assert http_get(port, "/health")[0] == 200
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                _alive(proc)
                time.sleep(0.5)
            assert http_get(port, "/ready")[0] == 503
        finally:
            subprocess.run([str(PG_SCRIPT), "up"], check=True)
        back = wait_for_status(port, "/ready", 200, 30, lambda: _alive(proc))
        assert back["checks"]["postgres"]["ok"] is True
        time.sleep(2.0)
        done.set()
        loader.join(30)
        assert not errors
        sink_env.wait_caught_up(timeout=60, alive=lambda: _alive(proc))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
    _assert_equal(sink_env, expected)


# -- helpers -------------------------------------------------------------------------------


def _asdict(record: object) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}  # type: ignore[arg-type]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _month_start_ms(month: tuple[int, int]) -> int:
    from datetime import UTC, datetime

    return int(datetime(month[0], month[1], 1, tzinfo=UTC).timestamp() * 1000)


def _alive(proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, f"sink exited with {proc.returncode}"


def _wait_progress(sink_env: SinkEnv, after: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            sum(stored_offsets(sink_env.database_url, sink_env.schema, sink_env.group).values())
            > after
        ):
            return
        time.sleep(0.02)
    pytest.fail("sink made no progress")


def _assert_equal(sink_env: SinkEnv, expected: Dataset) -> None:
    from tests.connectors.conftest import assert_tables_equal

    assert_tables_equal(sink_env.database_url, sink_env.schema, expected)

"""``recon report`` against the real PostgreSQL: figures equal the simulation's ground truth,
ages and periods on known rows, and the page's charts drawn by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from PIL import Image

from connectors.postgres.migrate import migrate
from streams.cli import main
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import pipeline
from streams.ops.report import build_report, render_html, render_text
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import expected_counts
from streams.worker.settings import WorkerSettings
from tests.ci_support import missing
from tests.pipeline_support import wait_for_counts

ROOT = Path(__file__).resolve().parents[3]
MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(database_url: str, pg_schema: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as c:
        migrate(c, pg_schema)
    with psycopg.connect(database_url, options=f"-csearch_path={pg_schema}", autocommit=True) as c:
        yield c


def add_match(conn: psycopg.Connection[Any], n: int, rule: str, first: datetime) -> None:
    conn.execute(
        "INSERT INTO recon_matches (match_id, reference, flow, rule, currency,"
        " payment_amount_minor, ledger_amount_minor, difference_minor, payment_event_ids,"
        " ledger_event_ids, first_event_time, matched_at)"
        " VALUES (%s, %s, 'payment', %s, 'EUR', 100, 100, 0, %s, %s, %s, %s)",
        [f"m{n}", f"R{n}", rule, [f"p{n}"], [f"l{n}"], first, first + timedelta(minutes=1)],
    )


def add_exception(
    conn: psycopg.Connection[Any], n: int, kind: str, raised: datetime, status: str = "open"
) -> None:
    conn.execute(
        "INSERT INTO recon_exceptions (exception_id, reference, flow, kind, status, currency,"
        " payment_amount_minor, ledger_amount_minor, payment_event_ids, ledger_event_ids,"
        " raised_at, resolved_at, detail)"
        " VALUES (%s, %s, 'payment', %s, %s, 'EUR', 100, 0, %s, '{}', %s, %s, '')",
        [
            f"x{n}",
            f"R{n}",
            kind,
            status,
            [f"p{n}"],
            raised,
            raised + timedelta(hours=1) if status == "resolved" else None,
        ],
    )


def test_ages_oldest_items_and_periods_on_known_rows(conn: psycopg.Connection[Any]) -> None:
    as_of = T0 + timedelta(days=10)
    add_match(conn, 1, "exact", T0)
    add_match(conn, 2, "exact", T0 + timedelta(minutes=30))
    add_match(conn, 3, "tolerance", T0 + timedelta(days=1))
    add_exception(conn, 4, "MISSING_LEDGER", as_of - timedelta(minutes=59))  # < 1 h
    add_exception(conn, 5, "MISSING_LEDGER", as_of - timedelta(hours=23))  # < 1 d
    add_exception(conn, 6, "AMOUNT_MISMATCH", as_of - timedelta(days=6, hours=23))  # < 7 d
    add_exception(conn, 7, "MISSING_PAYMENT", T0 + timedelta(minutes=10))  # older
    add_exception(conn, 8, "MISSING_PAYMENT", T0 + timedelta(minutes=5), status="resolved")
    conn.execute("INSERT INTO recon_dead_letters (dead_letter_id, origin, source_topic,"
                 " source_partition, source_offset, reason, detail, ingested_at, kafka_topic,"
                 " kafka_partition, kafka_offset) VALUES"
                 " ('d1', 'worker', 'payments', 0, 1, 'BAD_JSON', '', %s, 'recon.dlq', 0, 1),"
                 " ('d2', 'worker', 'payments', 0, 2, 'BAD_JSON', '', %s, 'recon.dlq', 0, 2),"
                 " ('d3', 'sink', 'recon.matched', 1, 9, 'BAD_AVRO', '', %s, 'recon.matched', 1, 9)",
                 [T0, T0, T0])  # fmt: skip

    r = build_report(conn, as_of, oldest=2)

    assert r.matches_by_rule == {"exact": 2, "tolerance": 1}
    assert r.exceptions_by_kind_status == {
        ("AMOUNT_MISMATCH", "open"): 1,
        ("MISSING_LEDGER", "open"): 2,
        ("MISSING_PAYMENT", "open"): 1,
        ("MISSING_PAYMENT", "resolved"): 1,
    }
    assert r.ageing == {"< 1 h": 1, "< 1 d": 1, "< 7 d": 1, "older": 1}
    assert [o.exception_id for o in r.oldest_open] == ["x7", "x6"]
    assert r.oldest_open[0].age == as_of - (T0 + timedelta(minutes=10))
    assert r.dead_letters_by_reason == {"BAD_AVRO": 1, "BAD_JSON": 2}
    assert r.match_rate == 3 / (3 + 4)
    # Matches by their first event, exceptions by their raising; the resolved one counts as
    # raised but not as open.
    first_day = r.daily[0]
    assert (first_day.start, first_day.matches, first_day.open_exceptions) == (
        T0 - timedelta(hours=9),
        2,
        1,
    )
    assert first_day.exceptions == 2
    assert first_day.match_rate == 2 / 3
    hour = next(p for p in r.hourly if p.start == T0)
    assert (hour.matches, hour.exceptions, hour.open_exceptions) == (2, 2, 1)
    assert sum(p.matches for p in r.hourly) == 3

    text = render_text(r)
    assert "match rate 42.86%: 3 matches, 4 open exceptions" in text
    assert "MISSING_PAYMENT  resolved" in text


def test_an_empty_database_gives_an_empty_report(conn: psycopg.Connection[Any]) -> None:
    r = build_report(conn, T0)
    assert (r.matches, r.open_exceptions, r.match_rate, r.daily) == (0, 0, None, [])
    assert "match rate -" in render_text(r)
    assert "<svg" in render_html(r)


def test_the_report_of_a_pipeline_run_equals_the_ground_truth(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    sim = simulate(3000, seed=303, config=MATCH)
    truth = truth_of(sim)
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=3)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        pipe.sink()
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
            r = build_report(conn)

    rules = Counter(m["rule"] for m in truth.matches.values())
    kinds = Counter((e["kind"], e["status"]) for e in truth.exceptions.values())
    open_ = sum(1 for e in truth.exceptions.values() if e["status"] == "open")
    assert r.matches_by_rule == dict(rules)
    assert r.exceptions_by_kind_status == dict(kinds)
    assert r.dead_letters_by_reason == truth.dead_letters
    assert r.match_rate == len(truth.matches) / (len(truth.matches) + open_)
    assert sum(r.ageing.values()) == open_
    assert sum(p.matches for p in r.daily) == len(truth.matches)
    assert sum(p.exceptions for p in r.hourly) == len(truth.exceptions)
    open_ids = {i for i, e in truth.exceptions.items() if e["status"] == "open"}
    assert {o.exception_id for o in r.oldest_open} <= open_ids
    assert len(r.oldest_open) == min(10, open_)
    raised = [o.raised_at for o in r.oldest_open]
    assert raised == sorted(raised)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("chromium is not installed", "install it with `make chromium`")
    return found


def _screenshot(page: Path, png: Path, tmp_path: Path) -> None:
    subprocess.run(
        [
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1200,2400", f"--screenshot={png}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def _colour_pixels(png: Path, rgb: tuple[int, int, int]) -> int:
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - np.array(rgb, dtype=np.int16)) <= 12).all(axis=-1).sum())


def test_the_page_opens_in_headless_chromium_with_its_charts_drawn(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    for n in range(24):
        add_match(conn, n, "exact", T0 + timedelta(hours=n))
        add_exception(conn, 100 + n, "MISSING_LEDGER", T0 + timedelta(hours=n, days=n % 9))
    page = tmp_path / "report.html"
    page.write_text(render_html(build_report(conn, T0 + timedelta(days=10))), encoding="utf-8")
    text = page.read_text()
    assert text.count("<svg") == 3
    # Nothing to fetch: no script, stylesheet or image from elsewhere (SVG links are local).
    assert re.findall(r'(?:src|href)="(?!#)', text) == []
    png = tmp_path / "report.png"
    _screenshot(page, png, tmp_path)
    # Each chart's own colour, as drawn: the match rate line and the volume bars in blue, the
    # ageing bars in orange, the exceptions' share of the volume in red.
    assert _colour_pixels(png, (0x2A, 0x7A, 0xB9)) > 2000
    assert _colour_pixels(png, (0xD9, 0x82, 0x2B)) > 2000
    assert _colour_pixels(png, (0xC2, 0x30, 0x30)) > 500


def test_the_command_prints_the_report_and_writes_the_page(
    conn: psycopg.Connection[Any],
    database_url: str,
    pg_schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_match(conn, 1, "split", T0)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RECON_PG_SCHEMA", pg_schema)
    page = tmp_path / "r.html"
    assert main(["report", "--html", str(page), "--as-of", "2026-03-03T00:00:00"]) == 0
    out = capsys.readouterr().out
    assert "as of 2026-03-03 00:00:00 UTC" in out
    assert "match rate 100.00%: 1 matches" in out
    assert page.read_text().startswith("<!DOCTYPE html>")

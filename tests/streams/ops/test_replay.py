"""``recon replay`` on the real broker and database: a replay with a corrected config leaves
exactly its own results visible, a replay with the same config rebuilds identical rows, and the
replaced generation's sink is fenced off."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.postgres import generations
from connectors.postgres.run import EXIT_RETIRED
from streams import generation
from streams.cli import main
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import Pipeline, env_for, pipeline
from streams.settings import KafkaSettings, TopicNames
from streams.simulate.local import run_local
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import differences, expected_counts, row_counts
from streams.worker.settings import WorkerSettings
from tests.pipeline_support import use_env, wait_for_counts

# The right config (the simulation's), and a bad deploy without its amount tolerance.
RIGHT = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)
WRONG = MatchConfig(match_window_ms=HOUR_MS)


def test_generation_names_derive_from_the_base_and_the_number() -> None:
    t = TopicNames()
    assert generation.output_topics(t, 0) == t
    g2 = generation.output_topics(t, 2)
    assert (g2.payments, g2.ledger) == (t.payments, t.ledger)  # inputs are shared
    assert (g2.matched, g2.dlq) == ("recon.matched.g2", "recon.dlq.g2")
    assert (generation.app_id("recon", 2), generation.schema("public", 2)) == (
        "recon-g2",
        "public_g2",
    )


def _counts_of_local(sim: Any, config: MatchConfig) -> tuple[int, int, int, int]:
    run = run_local(sim, config, partitions=3, fmt="avro")
    resolved = {e.exception_id for e in run.exceptions if e.status.value == "resolved"}
    return (
        len({m.match_id for m in run.matches}),
        len({e.exception_id for e in run.exceptions}),
        len(resolved),
        len(run.dead_letters),
    )


def _replay(
    pipe: Pipeline,
    config: MatchConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    env = env_for(
        replace(pipe.settings, match=config), tmp_path / "data", pipe.schema, pipe.database_url
    )
    use_env(monkeypatch, env)
    code = main(["replay", "--timeout", "300", "--work-dir", str(tmp_path / "replay")])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def _dump(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[object, ...]]]:
    """Every row, without the columns that say when or where a row was written."""
    return {
        "matches": conn.execute(
            "SELECT match_id, reference, flow, rule, currency, payment_amount_minor,"
            " ledger_amount_minor, difference_minor, payment_event_ids, ledger_event_ids,"
            " first_event_time, matched_at, exception_id FROM recon_matches ORDER BY 1"
        ).fetchall(),
        "exceptions": conn.execute(
            "SELECT exception_id, reference, flow, kind, status, currency, ledger_currency,"
            " payment_amount_minor, ledger_amount_minor, payment_event_ids, ledger_event_ids,"
            " raised_at, resolved_at, detail FROM recon_exceptions ORDER BY 1"
        ).fetchall(),
        "dead_letters": conn.execute(
            "SELECT dead_letter_id, origin, source_topic, source_partition, source_offset, key,"
            " value, reason, detail, key_size, value_size, key_sha256, value_sha256"
            " FROM recon_dead_letters ORDER BY 1"
        ).fetchall(),
    }


def test_a_replay_with_the_corrected_config_leaves_exactly_its_results(
    kafka: KafkaSettings,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = simulate(2000, seed=606, config=RIGHT)
    truth = truth_of(sim)
    wrong = _counts_of_local(sim, WRONG)
    assert wrong != expected_counts(truth)  # the bad deploy makes other results
    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=WRONG, partitions=3)
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        old_sink = pipe.sink()
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, wrong, 180) == wrong
            ids = conn.execute("SELECT exception_id FROM recon_exceptions").fetchall()
            stale = {str(r[0]) for r in ids} - set(truth.exceptions)
            assert stale  # e.g. AMOUNT_MISMATCH where the right config allows a tolerance

            out = _replay(pipe, RIGHT, tmp_path, monkeypatch, capsys)
            assert "switched: readers of schema" in out

            assert row_counts(conn) == expected_counts(truth)
            assert differences(truth, conn) == []  # also: no row the truth does not have
            found = conn.execute(
                "SELECT count(*) FROM recon_exceptions WHERE exception_id = ANY(%s)", [list(stale)]
            ).fetchone()
            assert found == (0,)
            assert generations.statuses(conn, schema) == {0: "retired", 1: "live"}

        # The replaced generation keeps consuming, but its sink may not write any more: the
        # first batch after the switch stops it.
        extra = simulate(50, seed=607, config=RIGHT)
        produce(extra, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        assert old_sink.proc is not None
        assert old_sink.proc.wait(120) == EXIT_RETIRED
        with pipe.pg() as conn:
            assert row_counts(conn) == expected_counts(truth)


def test_a_replay_with_the_same_config_rebuilds_identical_rows(
    kafka: KafkaSettings,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = simulate(2000, seed=608, config=RIGHT)
    truth = truth_of(sim)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=RIGHT, partitions=3)
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        pipe.sink()
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
            before = _dump(conn)
            _replay(pipe, RIGHT, tmp_path, monkeypatch, capsys)
            after = _dump(conn)
            # The operator commands follow the live generation without being told.
            assert main(["verify", "--wait", "60"]) == 0, capsys.readouterr().out
            assert main(["topics", "describe"]) == 0
            described = capsys.readouterr().out
            assert f"consumer group {pipe.settings.app_id}-g1: lag 0" in described
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert after == before

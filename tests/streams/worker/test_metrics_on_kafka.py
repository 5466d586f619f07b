"""The /metrics of the worker and the sink after a simulated run: the business counters equal
the ground truth (matches by rule, exceptions by kind and status, dead letters by reason, the
settlement figures), the sink's rows per table equal the stored rows, the gauges are there,
and no label holds a reference or an event id."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import free_port, pipeline
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import expected_counts
from streams.worker.settings import WorkerSettings
from tests.deploy.dashboard_support import SCRAPE_METRICS, dashboard_metric_names, load_dashboard
from tests.pipeline_support import wait_for_counts

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def samples(text: str) -> Samples:
    """Samples by metric name and sorted labels."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[labels] = sample.value
    return out


def by(metric: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    """Non-zero samples of one metric summed by one label."""
    out: Counter[str] = Counter()
    for key, value in metric.items():
        out[dict(key)[label]] += value
    return {k: v for k, v in out.items() if v}


def scrape(port: int) -> Samples:
    return samples(scrape_text(port))


def test_business_counters_equal_the_ground_truth(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    sim = simulate(3000, seed=1001, config=MATCH)
    truth = truth_of(sim)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=3)
    sink_port = free_port()
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        pipe.sink(http_port=sink_port)
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
            stored = {
                table: int(str(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))  # type: ignore[index]
                for table in ("recon_matches", "recon_exceptions", "recon_dead_letters")
            }
            open_rows = dict(
                conn.execute(
                    "SELECT kind, count(*) FROM recon_exceptions WHERE status = 'open' GROUP BY kind"
                ).fetchall()
            )
        worker_text = scrape_text(pipe.settings.web_port)
        metrics = samples(worker_text)
        sink_text = wait_for_sink_figures(sink_port, stored, open_rows)
        sink = samples(sink_text)

    rules = Counter(m["rule"] for m in truth.matches.values())
    assert {dict(k)["rule"]: v for k, v in metrics["recon_matches_total"].items() if v} == rules
    # An exception is emitted open when raised, and again resolved when a late match closes it.
    emitted: Counter[tuple[str, str]] = Counter()
    for e in truth.exceptions.values():
        emitted[(e["kind"], "open")] += 1
        if e["status"] == "resolved":
            emitted[(e["kind"], "resolved")] += 1
    got = {
        (dict(k)["kind"], dict(k)["status"]): v
        for k, v in metrics["recon_exceptions_total"].items()
        if v
    }
    assert got == emitted
    dead = {dict(k)["reason"]: v for k, v in metrics["recon_dead_letters_total"].items() if v}
    assert dead == truth.dead_letters

    # The business figure's parts (docs/observability.md).
    in_window = sum(n for rule, n in rules.items() if rule != "late")
    unmatched = sum(
        n
        for (kind, status), n in emitted.items()
        if status == "open"
        and kind in ("MISSING_LEDGER", "MISSING_PAYMENT", "AMOUNT_MISMATCH", "CURRENCY_MISMATCH")
    )
    assert by(metrics["recon_settlements_total"], "outcome") == {
        "matched_in_window": in_window,
        "unmatched_in_window": unmatched,
    }
    assert in_window
    assert unmatched

    # Gauges: every partition reports, and the lag is gone once everything is stored.
    partitions = {str(p) for p in range(3)}
    assert {dict(k)["partition"] for k in metrics["recon_open_groups"]} == partitions
    assert {dict(k)["partition"] for k in metrics["recon_watermark_lag_seconds"]} == partitions
    lag = metrics["recon_consumer_lag_records"]
    assert {(dict(k)["topic"], dict(k)["partition"]) for k in lag} == {
        (t, p)
        for t in (pipe.settings.topics.payments, pipe.settings.topics.ledger)
        for p in partitions
    }
    assert by(metrics["recon_ready"], "check") == {"kafka": 1, "restore": 1}

    # The sink: rows per table as stored, ready, the exception ageing as in the table.
    assert by(sink["recon_sink_rows_written_total"], "table") == {
        t: n for t, n in stored.items() if n
    }
    assert by(sink["recon_ready"], "check") == {"kafka": 1, "postgres": 1, "migrations": 1}
    assert sum(sink["recon_sink_batch_records_count"].values()) == sum(
        sink["recon_sink_batches_total"].values()
    )
    assert sum(v for v in sink["recon_sink_consumer_lag_records"].values()) == 0

    # The dashboard selects only what the two processes export.
    exported = exported_names(worker_text) | exported_names(sink_text) | SCRAPE_METRICS
    assert dashboard_metric_names(load_dashboard()) - exported == set()

    # Bounded labels: no reference and no event id of the run in any label.
    ids = set(truth.matches) | set(truth.exceptions)
    ids |= {str(m["reference"]) for m in truth.matches.values()}
    ids |= {str(e["reference"]) for e in truth.exceptions.values()}
    for text in (worker_text, sink_text):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                assert not set(sample.labels.values()) & ids, sample


def exported_names(text: str) -> set[str]:
    """Metric names a scrape shows, as the dashboard's queries name them: a counter by its
    ``_total`` series, a histogram by its base name; labelled metrics with no sample yet
    (a counter of errors that never happened) count too."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.add(family.name)
        else:
            names.add(family.name)
        names.update(s.name for s in family.samples if family.type != "histogram")
    return names


def wait_for_sink_figures(
    port: int, stored: dict[str, int], open_rows: dict[str, int], timeout: float = 60
) -> str:
    """The sink's page once its figures caught up: rows written as stored, no lag, and the
    exception ageing read (it is refreshed every 30 s)."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape_text(port)
        got = samples(text)
        rows = by(got.get("recon_sink_rows_written_total", {}), "table")
        opened = by(got.get("recon_open_exceptions", {}), "kind")
        lag = sum(got.get("recon_sink_consumer_lag_records", {}).values())
        if rows == {t: n for t, n in stored.items() if n} and opened == open_rows and not lag:
            return text
        if time.monotonic() > deadline:
            return text  # the assertions say what is missing
        time.sleep(1)

"""The worker's business counters on /metrics equal the ground truth after a simulated run:
matches by rule, exceptions by kind and status, dead letters by reason."""

from __future__ import annotations

import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipeline_support import wait_for_counts
from streams.engine.config import HOUR_MS, MatchConfig
from streams.pipeline import pipeline
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import expected_counts
from streams.worker.settings import WorkerSettings

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Counter samples by metric name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = tuple(sorted(sample.labels.items()))
                out.setdefault(sample.name, {})[labels] = sample.value
    return out


def test_business_counters_equal_the_ground_truth(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    sim = simulate(3000, seed=1001, config=MATCH)
    truth = truth_of(sim)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=3)
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        pipe.worker()
        pipe.sink()
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
        metrics = scrape(pipe.settings.web_port)

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

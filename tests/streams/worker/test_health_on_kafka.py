"""The worker's /ready and the logs of a real run.

- /ready answers 503 until the worker's state is restored, and the first 200 comes only after
  every changelog record is back in RocksDB (a worker started on an empty data directory).
- A match's log line (at DEBUG) carries its match_id and reference.
- No log line, /health, /ready or /metrics body of the worker or the sink holds the database
  password.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import free_port, pipeline, worker_metric
from streams.settings import KafkaSettings
from streams.simulate.produce import produce
from streams.simulate.scenarios import simulate
from streams.simulate.truth import truth_of
from streams.simulate.verify_pg import expected_counts
from streams.worker.settings import WorkerSettings
from streams.worker.topics import changelog_topic_name
from tests.pipeline_support import http_get, wait_for_counts, wait_for_status

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)
PASSWORD = "Pw-4c1e9d-not-in-any-log"  # the test looks for it everywhere


# (method, path) -> the answers allowed. Every endpoint answers GET and HEAD only; any other
# method is 405, Faust's own pages are gone, and an oversized path is a 4xx, never a crash.
# A method no HTTP specification names is a 400 to the worker's parser (aiohttp's llhttp
# refuses it before any routing) and a 405 to the sink's.
ENDPOINTS = ("/health", "/ready", "/metrics", "/references/r-1")
OTHER_METHODS = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "SEARCH")
HTTP_CASES: dict[tuple[str, str], tuple[int, ...]] = {
    ("GET", "/health"): (200,),
    ("HEAD", "/ready"): (200,),
    ("GET", "/metrics"): (200,),
    ("HEAD", "/metrics"): (200,),
    **{(method, path): (405,) for method in OTHER_METHODS for path in ENDPOINTS[:3]},
    **{("BREW", path): (400, 405) for path in ENDPOINTS[:3]},
    ("GET", "/router/"): (404,),
    ("GET", "/table/recon-state/x/"): (404,),
    ("GET", "/../../etc/passwd"): (404,),
    ("GET", "/x" * 5000): (400, 404, 414, 431),  # any 4xx, never a crash
    ("GET", "/" + "x" * 100_000): (400, 404, 414, 431),
    ("GET", "/health?" + "q" * 100_000): (400, 404, 414, 431),
}
# The worker's /references/{reference} page: GET and HEAD only too (the sink has no such page).
WORKER_CASES: dict[tuple[str, str], tuple[int, ...]] = {
    ("GET", "/references/r-1"): (404,),  # an unknown reference
    **{(method, "/references/r-1"): (405,) for method in OTHER_METHODS},
    ("BREW", "/references/r-1"): (400, 405),
}


def changelog_records(kafka: KafkaSettings, topic: str, partitions: int) -> int:
    """Keyed, committed records in the state changelog: what a restore applies."""
    consumer = Consumer(
        {
            **kafka.confluent_config(),
            "group.id": f"count-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        done: set[int] = set()
        n = 0
        deadline = time.monotonic() + 60
        while len(done) < partitions and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition() or 0)
                elif err is None and msg.key() is not None:
                    n += 1
        assert len(done) == partitions
        return n
    finally:
        consumer.close()


def test_ready_waits_for_the_restore_of_an_emptied_state(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    sim = simulate(3000, seed=77, config=MATCH)
    truth = truth_of(sim)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=3)
    with pipeline(base, database_url, tmp_path, schema) as pipe:
        worker = pipe.worker()
        port = pipe.settings.web_port
        pipe.sink()
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="avro")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
        assert wait_for_status(port, "/ready", 200, 30)["status"] == "ready"
        assert worker.stop() == 0
        expected = changelog_records(
            kafka, changelog_topic_name(pipe.settings), pipe.settings.partitions
        )
        assert expected > 1000  # enough state that the restore is real work

        # A lost disk: the restarted worker has nothing but the changelog.
        shutil.rmtree(pipe.work_dir / "worker")
        again = pipe.worker(name="worker", wait=False)
        answers: list[int] = []
        deadline = time.monotonic() + 120
        while True:
            status, body = http_get(port, "/ready", timeout=2)
            if status == 200:
                restored = worker_metric(port, "recon_restored_records_total")
                break
            assert again.proc is not None
            assert again.proc.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, f"not ready: {status} {body!r}"
            if status:
                answers.append(status)
                checks = orjson.loads(body)["checks"]
                assert set(checks) == {"kafka", "restore"}
            time.sleep(0.02)
        assert answers, "the worker answered nothing before it was ready"
        assert set(answers) == {503}
        assert restored == expected  # ready only once every changelog record is back
        ready = orjson.loads(http_get(port, "/ready")[1])
        assert ready["checks"]["restore"]["ok"] is True
        assert ready["checks"]["kafka"]["ok"] is True
        assert http_get(port, "/health")[0] == 200


def _with_password(url: str) -> tuple[str, str]:
    """The test database's URL with a password that cannot occur by chance: the local
    server trusts its clients, so any password connects. A DATABASE_URL given from outside
    keeps its own password, which the test then looks for."""
    if os.environ.get("DATABASE_URL"):
        password = urlsplit(url).password or ""
        if len(password) < 8:
            pytest.skip("the given DATABASE_URL's password is too short to look for")
        return url, password
    parts = urlsplit(url)
    user = parts.username or "recon"
    netloc = f"{user}:{PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), PASSWORD


def test_logs_carry_correlation_fields_and_no_password(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    url, password = _with_password(database_url)
    sim = simulate(600, seed=78, config=MATCH)
    truth = truth_of(sim)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    base = WorkerSettings(kafka=kafka, match=MATCH, partitions=2)
    debug = {"RECON_LOG_LEVEL": "DEBUG", "RECON_LOG_FORMAT": "json"}
    sink_port = free_port()
    with pipeline(base, url, tmp_path, schema) as pipe:
        worker = pipe.worker(extra_env=debug)
        sink = pipe.sink(http_port=sink_port, extra_env=debug)
        produce(sim, kafka, pipe.settings.topics, pipe.settings.partitions, fmt="json")
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 180) == expected_counts(truth)
        wait_for_status(sink_port, "/ready", 200, 30)
        bodies = [
            http_get(port, path)[1]
            for port in (pipe.settings.web_port, sink_port)
            for path in ("/health", "/ready", "/metrics")
        ]
        logs = [worker.log_path.read_text(), sink.log_path.read_text()]
        cases = {
            "worker": (pipe.settings.web_port, {**HTTP_CASES, **WORKER_CASES}),
            "sink": (sink_port, HTTP_CASES),
        }
        served = {
            (name, method, path): (http_get(port, path, method=method)[0], want)
            for name, (port, table) in cases.items()
            for (method, path), want in table.items()
        }
        # Both still serve after all that.
        after = [http_get(port, "/health")[0] for port, _ in cases.values()]
        assert worker.proc is not None
        assert worker.proc.poll() is None
        assert sink.proc is not None
        assert sink.proc.poll() is None

    # Only our endpoints, GET and HEAD only: Faust's /router and /table pages are off.
    wrong = [
        (name, method, path[:40], status)
        for (name, method, path), (status, want) in served.items()
        if status not in want
    ]
    assert wrong == []
    assert after == [200, 200]

    # The run removed every topic it made, Faust's own included.
    left = AdminClient(kafka.confluent_config()).list_topics(timeout=30).topics
    assert [name for name in left if pipe.work_dir.name in name] == []

    for body in bodies:
        assert body
        assert password.encode() not in body
    for text in logs:
        assert password not in text
    # Every line is one JSON object, librdkafka's included.
    lines = [orjson.loads(line) for text in logs for line in text.splitlines() if line.strip()]
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    # A match's line names its match and its reference.
    logged = {str(line["match_id"]): line.get("reference") for line in lines if "match_id" in line}
    assert set(logged) == set(truth.matches)
    for match_id, m in truth.matches.items():
        assert logged[match_id] == m["reference"]

"""Security on the real broker: every process through the SASL_SSL listener (SCRAM-SHA-512 over
TLS, from environment settings alone), and a wrong password or an untrusted certificate as one
clear line and exit 78 within 15 s, never a hang or a librdkafka flood. No secret shows in a
log, a page or an error.

The listener, its certificates and its user are made by `make up` (.ci/kafka.sh); the database
role that logs in only over TLS by .ci/postgres.sh.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from streams.engine.config import HOUR_MS, MatchConfig
from streams.exceptions import EXIT_CONFIG
from streams.local_runner import env_for, free_port, pipeline
from streams.settings import KafkaSettings
from streams.simulate.truth import Truth
from streams.simulate.verify_pg import differences, expected_counts
from streams.worker.settings import WorkerSettings
from tests.pipeline_support import http_get, wait_for_counts, wait_for_status
from tests.security_support import (
    Ran,
    assert_one_clear_line,
    clean_env,
    distinctive,
    run_recon,
    untrusted_ca,
)

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


def test_a_run_through_sasl_ssl_and_tls_equals_the_ground_truth(
    kafka_sasl: KafkaSettings, database_tls_url: str, tmp_path: Path
) -> None:
    """Simulator, worker (aiokafka and confluent-kafka), sink and commands on the SASL_SSL
    listener, the sink and the commands on PostgreSQL over TLS (verify-full, a password-only
    role): the rows equal the ground truth, verify passes, and no secret leaks."""
    assert kafka_sasl.security_protocol == "SASL_SSL"
    pg_password = urlsplit(database_tls_url).password or ""
    secrets = [kafka_sasl.sasl_password or "", pg_password]
    assert all(len(s) >= 16 for s in secrets)
    base = WorkerSettings(kafka=kafka_sasl, match=MATCH, partitions=2)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    sink_port = free_port()
    truth_path = tmp_path / "truth.json"
    ran: list[Ran] = []
    # DEBUG: the most a log says, librdkafka's and aiokafka's lines included.
    debug = {"RECON_LOG_LEVEL": "DEBUG", "RECON_LOG_FORMAT": "json"}
    with pipeline(base, database_tls_url, tmp_path, schema) as pipe:
        worker = pipe.worker(extra_env=debug)
        sink = pipe.sink(http_port=sink_port, extra_env=debug)
        env = {
            **env_for(pipe.settings, pipe.work_dir / "cli", schema, database_tls_url),
            "RECON_LOG_FORMAT": "json",
        }
        simulate = ["simulate", "--count", "400", "--seed", "13", "--format", "avro"]
        simulated = run_recon([*simulate, "--truth", str(truth_path)], env)
        ran.append(simulated)
        assert simulated.code == 0, simulated.output[-3000:]
        truth = Truth.load(truth_path)
        with pipe.pg() as conn:
            assert wait_for_counts(conn, expected_counts(truth), 60) == expected_counts(truth)
            assert differences(truth, conn) == []
            # The sink's connections are TLS ones.
            tls = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert tls.fetchone() == (True,)
        commands = (["topics", "create"], ["topics", "describe"], ["verify", "--wait", "30"])
        for args in (*commands, ["report"]):
            done = run_recon(args, env)
            ran.append(done)
            assert done.code == 0, (args, done.output[-3000:])
        wait_for_status(sink_port, "/ready", 200, 30)
        pages = [
            http_get(port, path)
            for port in (pipe.settings.web_port, sink_port)
            for path in ("/health", "/ready", "/metrics")
        ]
        logs = [worker.log_path.read_text(), sink.log_path.read_text()]
    with psycopg.connect(database_tls_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    for status, body in pages:
        assert status == 200, body[:300]
    texts = [body.decode() for _, body in pages] + logs + [r.output for r in ran]
    for text in texts:
        for secret in secrets:
            assert secret not in text


# (process, the one-line start of its argv); each has its own data dir and port below.
PROCESSES = {
    "worker": ["worker"],
    "sink": ["sink"],
    "topics": ["topics", "describe"],
    "simulate": ["simulate", "--count", "10"],
}


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrusted_ca(tmp_path_factory.mktemp("ca"))


@pytest.mark.parametrize("process", sorted(PROCESSES))
@pytest.mark.parametrize("fault", ["wrong-password", "untrusted-certificate"])
def test_a_refused_connection_is_one_clear_line_and_exit_78(
    process: str,
    fault: str,
    kafka_sasl: KafkaSettings,
    database_url: str,
    other_ca: Path,
    tmp_path: Path,
) -> None:
    wrong = distinctive("wrong")
    if fault == "wrong-password":
        settings = dataclasses.replace(kafka_sasl, sasl_password=wrong)
        says = f"refused the credentials of user {kafka_sasl.sasl_username!r}"
    else:
        settings = dataclasses.replace(kafka_sasl, ssl_cafile=str(other_ca))
        says = "certificate is not trusted"
    env = clean_env(
        **settings.env(),
        DATABASE_URL=database_url,
        RECON_DATA_DIR=str(tmp_path / "data"),
        RECON_WEB_PORT=str(free_port()),
        RECON_SINK_HTTP_PORT="0",
    )
    args = PROCESSES[process]
    if process == "simulate":
        args = [*args, "--truth", str(tmp_path / "truth.json")]
    ran = run_recon(args, env, timeout=60)
    message = assert_one_clear_line(ran, EXIT_CONFIG, says, [wrong, kafka_sasl.sasl_password or ""])
    assert kafka_sasl.bootstrap_servers in message
    print(f"{process} {fault}: exit {ran.code} after {ran.seconds:.2f}s: {message}")

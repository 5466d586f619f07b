"""Worker settings from the environment, and the duration syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.engine.config import MatchConfig
from streams.exceptions import ConfigError
from streams.settings import KafkaSettings, TopicNames, parse_duration_ms
from streams.worker.settings import WorkerSettings, worker_from_env


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1", 1),
        ("1500", 1_500),
        ("500ms", 500),
        ("10ms", 10),  # "ms", not minutes followed by junk
        ("30s", 30_000),
        ("5m", 300_000),
        ("48h", 172_800_000),
        ("30d", 2_592_000_000),
        ("  48h  ", 172_800_000),
        ("007s", 7_000),
    ],
)
def test_parse_duration_ms(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    ["", "   ", "ms", "h", "5x", "1.5h", "-5m", "+5m", "5min", "5 mm", "5s5", "1e3", "5h30m"],
)
def test_parse_duration_ms_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration_ms(text)


def test_empty_environment_gives_the_defaults() -> None:
    settings = worker_from_env({})

    assert settings == WorkerSettings()
    assert settings.match == MatchConfig(
        allowed_lateness_ms=300_000,
        match_window_ms=172_800_000,
        retention_ms=2_592_000_000,
        amount_tolerance_minor=0,
        amount_tolerance_bps=0,
    )
    assert settings.idle_timeout_ms == 0
    assert settings.group_instance_id is None  # dynamic membership unless asked


def test_group_instance_id_turns_on_static_membership() -> None:
    assert worker_from_env({"RECON_GROUP_INSTANCE_ID": "recon-worker-2"}).group_instance_id == (
        "recon-worker-2"
    )


def test_blank_values_fall_back_to_the_defaults() -> None:
    blank = dict.fromkeys(("RECON_PARTITIONS", "RECON_MATCH_WINDOW", "RECON_APP_ID"), "  ")
    assert worker_from_env(blank) == WorkerSettings()


def test_worker_from_env_parses_durations_and_ints() -> None:
    env = {
        "RECON_APP_ID": "recon-test",
        "RECON_PARTITIONS": "12",
        "RECON_DATA_DIR": "/var/lib/recon",
        "RECON_ALLOWED_LATENESS": "30s",
        "RECON_MATCH_WINDOW": "2h",
        "RECON_RETENTION": "7d",
        "RECON_AMOUNT_TOLERANCE_MINOR": "5",
        "RECON_AMOUNT_TOLERANCE_BPS": "10",
        "RECON_PROCESSING_GUARANTEE": "at_least_once",
        "RECON_BATCH_MAX": " 250 ",
        "RECON_BATCH_WITHIN": "1500",
        "RECON_IDLE_TIMEOUT": "5m",
        "RECON_WEB_PORT": "7070",
        "RECON_WEB_HOST": "0.0.0.0",
        "RECON_ROCKSDB_BLOCK_CACHE_BYTES": "1048576",
        "RECON_ROCKSDB_WRITE_BUFFER_BYTES": "2097152",
        "RECON_TOPIC_PAYMENTS": "in.payments",
        "RECON_TOPIC_DLQ": "out.dlq",
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
    }

    assert worker_from_env(env) == WorkerSettings(
        app_id="recon-test",
        kafka=KafkaSettings(bootstrap_servers="k1:9092,k2:9092"),
        topics=TopicNames(payments="in.payments", dlq="out.dlq"),
        partitions=12,
        data_dir=Path("/var/lib/recon"),
        match=MatchConfig(
            allowed_lateness_ms=30_000,
            match_window_ms=7_200_000,
            retention_ms=604_800_000,
            amount_tolerance_minor=5,
            amount_tolerance_bps=10,
        ),
        processing_guarantee="at_least_once",
        batch_max=250,
        batch_within_ms=1_500,
        idle_timeout_ms=300_000,
        web_port=7070,
        web_host="0.0.0.0",
        rocksdb_block_cache_bytes=1_048_576,
        rocksdb_write_buffer_bytes=2_097_152,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECON_PARTITIONS", "six"),
        ("RECON_PARTITIONS", "0"),
        ("RECON_PARTITIONS", "-3"),
        ("RECON_PARTITIONS", "1.5"),
        ("RECON_BATCH_MAX", "0"),
        ("RECON_WEB_PORT", "80a"),
        ("RECON_AMOUNT_TOLERANCE_MINOR", "-1"),
        ("RECON_AMOUNT_TOLERANCE_BPS", "ten"),
        ("RECON_MATCH_WINDOW", "0"),  # the window must be positive
        ("RECON_MATCH_WINDOW", "2 days"),
        ("RECON_ALLOWED_LATENESS", "-5m"),
        ("RECON_RETENTION", "1.5d"),
        ("RECON_BATCH_WITHIN", "100 ms ago"),
        ("RECON_IDLE_TIMEOUT", "soon"),
        ("RECON_PROCESSING_GUARANTEE", "exactly-once"),
        ("RECON_ROCKSDB_BLOCK_CACHE_BYTES", "16MiB"),
    ],
)
def test_worker_from_env_rejects_bad_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        worker_from_env({name: value})


def test_exactly_once_is_refused_with_a_pointer_to_the_reason() -> None:
    with pytest.raises(ConfigError, match=r"docs/delivery\.md"):
        worker_from_env({"RECON_PROCESSING_GUARANTEE": "exactly_once"})

"""The worker's settings: one frozen object read from the environment (defaults in README)."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams import generation
from streams.engine.config import DAY_MS, HOUR_MS, MINUTE_MS, MatchConfig
from streams.exceptions import ConfigError
from streams.settings import (
    KafkaSettings,
    TopicNames,
    get_duration,
    get_int,
    get_retention,
    get_str,
    kafka_from_env,
    topics_from_env,
)

# Faust's exactly_once is refused: the worker commits each batch's state and outputs in its own
# Kafka transaction, and inputs at least once with re-emission (docs/delivery.md).
GUARANTEES = ("at_least_once",)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    app_id: str = "recon"
    # The generation this worker belongs to (streams/generation.py); names derive from it.
    generation: int = 0
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicNames = field(default_factory=TopicNames)
    partitions: int = 6
    # Retention of the input and output topics (-1: forever). A replay rebuilds results from the
    # inputs, so it reaches back only as far as they are kept (docs/operations.md).
    input_retention_ms: int = -1
    output_retention_ms: int = -1
    data_dir: Path = Path(".local/worker")
    match: MatchConfig = field(default_factory=MatchConfig)
    processing_guarantee: str = "at_least_once"
    # Records per fetch (each fetch becomes one message per input partition), fetched partition
    # batches per worker batch (one Kafka transaction), and the longest a batch waits to fill.
    batch_max: int = 5_000
    batch_events: int = 8
    batch_within_ms: int = 100
    # Sweep steps (released events, deadlines, purges) per partition and Kafka transaction: a
    # released backlog goes out in transactions of bounded size and memory.
    sweep_chunk: int = 5_000
    # An event time further than this ahead of its record's Kafka timestamp is BAD_EVENT_TIME
    # (it would drag the partition's watermark); 0 = no bound.
    max_event_time_ahead_ms: int = HOUR_MS
    # An output record larger than this is not sent: its input is dead-lettered instead.
    # Below the producer's message.max.bytes (1,000,000) and the topics' max.message.bytes.
    max_record_bytes: int = 900_000
    # Wall-clock silence after which an input gets heartbeats; 0 = off (fully deterministic).
    idle_timeout_ms: int = 0
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    # RocksDB block cache per partition DB (Faust's default is 2 GiB per partition).
    rocksdb_block_cache_bytes: int = 16 * 1024 * 1024
    rocksdb_write_buffer_bytes: int = 8 * 1024 * 1024
    # Each batch is one Kafka transaction under this id (derived when unset, see
    # transactional_id()); a restart with the same id aborts what a killed run left open.
    transactional_id: str | None = None
    # How long an open transaction of a worker that died and does not come back holds back
    # read_committed readers (the sink, state restores) before the broker aborts it.
    transaction_timeout_ms: int = 10_000
    # How long the group waits for a worker that died without leaving (kill -9, lost node)
    # before its partitions move: the pause a crash costs. Faust's default.
    session_timeout_ms: int = 60_000
    # Static group membership (KIP-345), e.g. the StatefulSet pod's name: a worker restarted
    # under the same id takes its partitions back at once instead of after the session
    # timeout. A worker stopped for good (scale-in) then also holds its partitions until the
    # session timeout, since a static member does not leave the group. None: dynamic.
    group_instance_id: str | None = None
    # A Confluent schema registry for inputs in the Confluent wire format (None: such records
    # are dead-lettered UNKNOWN_SCHEMA). Basic auth as "user:password".
    schema_registry_url: str | None = None
    schema_registry_basic_auth: str | None = field(default=None, repr=False)
    # Tests only: SIGTERM at a point of a batch cycle (streams/worker/stop_points.py).
    fault_stop_at: str | None = None

    @property
    def effective_transactional_id(self) -> str:
        """Stable for one worker: its host and its data directory (a StatefulSet pod keeps
        both), so a restarted worker fences and aborts its own unfinished batch."""
        if self.transactional_id:
            return self.transactional_id
        where = f"{socket.gethostname()}:{self.data_dir.resolve()}"
        return f"{self.app_id}-worker-{hashlib.sha256(where.encode()).hexdigest()[:16]}"

    def __post_init__(self) -> None:
        if self.processing_guarantee not in GUARANTEES:
            raise ConfigError(
                f"processing guarantee {self.processing_guarantee!r} is not supported: use "
                "at_least_once (outputs are idempotent and the sink is exactly-once; see "
                "docs/delivery.md)"
            )
        if not 6_000 <= self.session_timeout_ms <= 90_000:
            # The broker's group.min.session.timeout.ms, and Faust's request timeout.
            raise ConfigError("RECON_SESSION_TIMEOUT must be between 6s and 90s")
        if self.transaction_timeout_ms < 1_000:
            raise ConfigError("RECON_TRANSACTION_TIMEOUT must be at least 1s")
        if self.partitions < 1 or min(self.batch_max, self.batch_events, self.sweep_chunk) < 1:
            raise ConfigError("partitions, batch size and sweep chunk must be positive")
        if not 10_000 <= self.max_record_bytes <= 1_000_000:
            raise ConfigError("RECON_MAX_RECORD_BYTES must be between 10000 and 1000000")
        if min(self.input_retention_ms, self.output_retention_ms) < -1:
            raise ConfigError("topic retention must be a duration, or -1 / forever")
        if self.max_event_time_ahead_ms < 0:
            raise ConfigError("RECON_MAX_EVENT_TIME_AHEAD must not be negative")


def worker_from_env(env: Mapping[str, str] | None = None) -> WorkerSettings:
    env = os.environ if env is None else env
    d = WorkerSettings()
    n = generation.generation_from_env(env)
    return WorkerSettings(
        app_id=generation.app_id(get_str(env, "RECON_APP_ID", d.app_id), n),
        generation=n,
        kafka=kafka_from_env(env),
        topics=generation.output_topics(topics_from_env(env), n),
        partitions=get_int(env, "RECON_PARTITIONS", d.partitions),
        input_retention_ms=get_retention(env, "RECON_INPUT_RETENTION", d.input_retention_ms),
        output_retention_ms=get_retention(env, "RECON_OUTPUT_RETENTION", d.output_retention_ms),
        data_dir=generation.data_dir(Path(get_str(env, "RECON_DATA_DIR", str(d.data_dir))), n),
        match=MatchConfig(
            allowed_lateness_ms=get_duration(env, "RECON_ALLOWED_LATENESS", 5 * MINUTE_MS),
            match_window_ms=get_duration(env, "RECON_MATCH_WINDOW", 48 * HOUR_MS),
            retention_ms=get_duration(env, "RECON_RETENTION", 30 * DAY_MS),
            amount_tolerance_minor=get_int(env, "RECON_AMOUNT_TOLERANCE_MINOR", 0),
            amount_tolerance_bps=get_int(env, "RECON_AMOUNT_TOLERANCE_BPS", 0),
            max_group_events=get_int(env, "RECON_MAX_GROUP_EVENTS", 1000),
        ),
        processing_guarantee=get_str(env, "RECON_PROCESSING_GUARANTEE", d.processing_guarantee),
        batch_max=get_int(env, "RECON_BATCH_MAX", d.batch_max),
        batch_events=get_int(env, "RECON_BATCH_EVENTS", d.batch_events),
        batch_within_ms=get_duration(env, "RECON_BATCH_WITHIN", d.batch_within_ms),
        sweep_chunk=get_int(env, "RECON_SWEEP_CHUNK", d.sweep_chunk),
        max_event_time_ahead_ms=get_duration(
            env, "RECON_MAX_EVENT_TIME_AHEAD", d.max_event_time_ahead_ms
        ),
        max_record_bytes=get_int(env, "RECON_MAX_RECORD_BYTES", d.max_record_bytes),
        idle_timeout_ms=get_duration(env, "RECON_IDLE_TIMEOUT", 0),
        web_port=get_int(env, "RECON_WEB_PORT", d.web_port),
        web_host=get_str(env, "RECON_WEB_HOST", d.web_host),
        rocksdb_block_cache_bytes=get_int(
            env, "RECON_ROCKSDB_BLOCK_CACHE_BYTES", d.rocksdb_block_cache_bytes
        ),
        rocksdb_write_buffer_bytes=get_int(
            env, "RECON_ROCKSDB_WRITE_BUFFER_BYTES", d.rocksdb_write_buffer_bytes
        ),
        transactional_id=get_str(env, "RECON_TRANSACTIONAL_ID", "") or None,
        session_timeout_ms=get_duration(env, "RECON_SESSION_TIMEOUT", d.session_timeout_ms),
        group_instance_id=get_str(env, "RECON_GROUP_INSTANCE_ID", "") or None,
        schema_registry_url=get_str(env, "SCHEMA_REGISTRY_URL", "") or None,
        schema_registry_basic_auth=get_str(env, "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "") or None,
        transaction_timeout_ms=get_duration(
            env, "RECON_TRANSACTION_TIMEOUT", d.transaction_timeout_ms
        ),
        fault_stop_at=get_str(env, "RECON_FAULT_STOP_AT", "") or None,
    )

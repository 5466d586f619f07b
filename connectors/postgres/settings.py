"""Settings of ``recon sink`` and ``recon db``: one frozen object read from the environment.

==============================  ==============  ===============================================
Variable                        Default         Meaning
==============================  ==============  ===============================================
DATABASE_URL                    local server    libpq URL, passed as is (``sslmode`` etc. honoured)
RECON_PG_SCHEMA                 ``public``      schema of the sink's tables (created if missing)
RECON_SINK_GROUP_ID             ``recon-sink``  Kafka consumer group; also keys the offsets table
RECON_SINK_INSTANCE_ID          (none)          static group membership: a restart takes over at once
RECON_SINK_BATCH_SIZE           5000            records per batch (also the memory bound)
RECON_SINK_LINGER               200ms           max wait for a batch to fill
RECON_SINK_MAX_RETRIES          -1              failed attempts in a row before exiting 3; -1 = never
RECON_SINK_RETRY_BACKOFF        200ms           first backoff; doubles per attempt, with jitter
RECON_SINK_RETRY_BACKOFF_MAX    10s             backoff cap
RECON_SINK_POOL_SIZE            2               PostgreSQL connections held open
RECON_SINK_CONNECT_TIMEOUT      5s              libpq connect timeout
RECON_SINK_SESSION_TIMEOUT      45s             Kafka group session timeout
RECON_SINK_SHUTDOWN_TIMEOUT     30s             how long SIGTERM may retry the last batch
RECON_SINK_PARTITIONS_AHEAD     3               months of partitions created ahead at start
RECON_SINK_PARTITIONS_PAST      120             oldest month (from now) that gets its own partition
RECON_SINK_PARTITIONS_FUTURE    24              newest month (from now) that gets its own partition
RECON_SINK_HTTP_PORT            0               /health, /ready, /metrics port; 0 = no server
                                                (``RECON_SINK_METRICS_PORT``: its old name)
RECON_SINK_HTTP_HOST            ``0.0.0.0``     address that server binds
==============================  ==============  ===============================================

Plus Kafka (``KAFKA_*``, see :func:`streams.settings.kafka_from_env`) and the topic names
``RECON_TOPIC_MATCHED`` / ``RECON_TOPIC_EXCEPTIONS`` / ``RECON_TOPIC_DLQ``. Records outside the
past/future window land in each table's DEFAULT partition.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.exceptions import SinkConfigError
from streams import generation
from streams.settings import (
    LOCAL_DATABASE_URL,
    KafkaSettings,
    TopicNames,
    database_url_from_env,
    get_duration,
    get_int,
    get_str,
    kafka_from_env,
    topics_from_env,
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class SinkSettings:
    database_url: str = field(default=LOCAL_DATABASE_URL, repr=False)
    schema: str = "public"  # where this sink's generation writes
    group_id: str = "recon-sink"
    # The generation (streams/generation.py) and the schema readers query, which holds the
    # generations table and, once a replay switched, views of the live generation's tables.
    generation: int = 0
    readers_schema: str | None = None  # None: ``schema`` (generation 0 writes where it is read)
    instance_id: str | None = None
    batch_size: int = 5000
    linger_ms: int = 50
    max_retries: int = -1
    retry_backoff_ms: int = 200
    retry_backoff_max_ms: int = 10_000
    pool_size: int = 2
    connect_timeout_ms: int = 5_000
    session_timeout_ms: int = 45_000
    shutdown_timeout_ms: int = 30_000
    partitions_ahead: int = 3
    partitions_past_months: int = 120
    partitions_future_months: int = 24
    metrics_port: int = 0  # the HTTP port of /health, /ready and /metrics; 0: none
    http_host: str = "0.0.0.0"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicNames = field(default_factory=TopicNames)

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.readers):
            raise SinkConfigError(
                f"RECON_PG_SCHEMA must be a plain identifier, got {self.readers!r}"
            )
        if not _IDENTIFIER.match(self.schema):
            raise SinkConfigError(
                f"RECON_PG_SCHEMA must be a plain identifier, got {self.schema!r}"
            )
        if self.batch_size < 1:
            raise SinkConfigError("RECON_SINK_BATCH_SIZE must be >= 1")
        if self.pool_size < 1:
            raise SinkConfigError("RECON_SINK_POOL_SIZE must be >= 1")
        if self.retry_backoff_ms < 1 or self.retry_backoff_max_ms < self.retry_backoff_ms:
            raise SinkConfigError(
                "need 1 <= RECON_SINK_RETRY_BACKOFF <= RECON_SINK_RETRY_BACKOFF_MAX"
            )

    @property
    def readers(self) -> str:
        """The schema readers query (see ``readers_schema``)."""
        return self.readers_schema or self.schema

    @property
    def source_topics(self) -> tuple[str, str, str]:
        return (self.topics.matched, self.topics.exceptions, self.topics.dlq)


def sink_settings_from_env(env: Mapping[str, str] | None = None) -> SinkSettings:
    env = os.environ if env is None else env
    d = SinkSettings()
    n = generation.generation_from_env(env)
    readers = env.get("RECON_PG_SCHEMA", "").strip() or d.schema
    return SinkSettings(
        database_url=database_url_from_env(env),
        schema=generation.schema(readers, n),
        group_id=generation.sink_group(env.get("RECON_SINK_GROUP_ID", "").strip() or d.group_id, n),
        generation=n,
        readers_schema=readers if n else None,
        instance_id=env.get("RECON_SINK_INSTANCE_ID", "").strip() or None,
        batch_size=get_int(env, "RECON_SINK_BATCH_SIZE", d.batch_size),
        linger_ms=get_duration(env, "RECON_SINK_LINGER", d.linger_ms),
        max_retries=get_int(env, "RECON_SINK_MAX_RETRIES", d.max_retries),
        retry_backoff_ms=get_duration(env, "RECON_SINK_RETRY_BACKOFF", d.retry_backoff_ms),
        retry_backoff_max_ms=get_duration(
            env, "RECON_SINK_RETRY_BACKOFF_MAX", d.retry_backoff_max_ms
        ),
        pool_size=get_int(env, "RECON_SINK_POOL_SIZE", d.pool_size),
        connect_timeout_ms=get_duration(env, "RECON_SINK_CONNECT_TIMEOUT", d.connect_timeout_ms),
        session_timeout_ms=get_duration(env, "RECON_SINK_SESSION_TIMEOUT", d.session_timeout_ms),
        shutdown_timeout_ms=get_duration(env, "RECON_SINK_SHUTDOWN_TIMEOUT", d.shutdown_timeout_ms),
        partitions_ahead=get_int(env, "RECON_SINK_PARTITIONS_AHEAD", d.partitions_ahead),
        partitions_past_months=get_int(env, "RECON_SINK_PARTITIONS_PAST", d.partitions_past_months),
        partitions_future_months=get_int(
            env, "RECON_SINK_PARTITIONS_FUTURE", d.partitions_future_months
        ),
        metrics_port=get_int(
            env, "RECON_SINK_HTTP_PORT", get_int(env, "RECON_SINK_METRICS_PORT", d.metrics_port)
        ),
        http_host=get_str(env, "RECON_SINK_HTTP_HOST", d.http_host),
        kafka=kafka_from_env(env),
        topics=generation.output_topics(topics_from_env(env), n),
    )

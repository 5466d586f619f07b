"""Prometheus metrics of the sink (the default registry, served at the sink's /metrics).

Names follow Prometheus' conventions (docs/observability.md): counters end in ``_total``
(prometheus_client adds it), durations in ``_seconds``; no label holds an unbounded value.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_WRITTEN = Counter(
    "recon_sink_rows_written", "Rows inserted or updated by the sink, per target table", ["table"]
)
BATCHES = Counter("recon_sink_batches", "Batches committed by the sink")
BATCH_SECONDS = Histogram(
    "recon_sink_batch_seconds",
    "Time to write and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_RECORDS = Histogram(
    "recon_sink_batch_records",
    "Records per committed batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000),
)
RETRIES = Counter("recon_sink_retries", "Failed batch attempts that will be retried", ["reason"])
DATABASE_ERRORS = Counter(
    "recon_sink_database_errors",
    "PostgreSQL errors met: unavailable (connection, timeout, serialization) or rejected (data)",
    ["kind"],
)
DEAD_LETTERS = Counter(
    "recon_sink_dead_letters", "Records the sink stored as dead letters", ["reason"]
)
COPY_FALLBACKS = Counter(
    "recon_sink_copy_fallbacks",
    "Batches whose direct COPY met a stored row and went through the staging table instead",
    ["table"],
)
CONSUMER_LAG = Gauge(
    "recon_sink_consumer_lag_records",
    "Output records not yet stored in PostgreSQL, per topic partition",
    ["topic", "partition"],
)
LAST_COMMIT = Gauge(
    "recon_sink_last_commit_timestamp_seconds", "Wall time of the last committed batch"
)
READY = Gauge("recon_ready", "1 when that readiness check is ok, else 0", ["check"])
OPEN_EXCEPTIONS = Gauge(
    "recon_open_exceptions",
    "Open exceptions in PostgreSQL, by kind (refreshed every 30 s)",
    ["kind"],
)
OLDEST_OPEN_EXCEPTION = Gauge(
    "recon_oldest_open_exception_age_seconds",
    "Wall clock minus raised_at of the oldest open exception, by kind",
    ["kind"],
)
VERIFY_LAST_RUN = Gauge(
    "recon_verify_last_run_timestamp_seconds", "When `recon verify` last ran on this schema"
)
VERIFY_PROBLEMS = Gauge(
    "recon_verify_problems", "Problems the last `recon verify` found (0: the books balance)"
)

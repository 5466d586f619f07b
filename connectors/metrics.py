"""Prometheus metrics of the sinks (counters and a histogram; no HTTP server unless asked)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS_WRITTEN = Counter(
    "recon_sink_records_written",
    "Rows inserted or updated by the sink, per target table",
    ["table"],
)
BATCHES = Counter("recon_sink_batches", "Batches committed by the sink")
BATCH_SECONDS = Histogram(
    "recon_sink_batch_seconds",
    "Time to write and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RETRIES = Counter("recon_sink_retries", "Failed batch attempts that will be retried", ["reason"])
DEAD_LETTERS = Counter(
    "recon_sink_dead_letters", "Records the sink stored as dead letters", ["reason"]
)
COPY_FALLBACKS = Counter(
    "recon_sink_copy_fallbacks",
    "Batches whose direct COPY met a stored row and went through the staging table instead",
    ["table"],
)

"""Prometheus metrics of the worker (served at GET /metrics on the worker's web port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECORDS_IN = Counter("recon_records_in_total", "Input records read", ["topic"], registry=REGISTRY)
MATCHES = Counter("recon_matches_total", "Matches emitted", ["rule"], registry=REGISTRY)
EXCEPTIONS = Counter(
    "recon_exceptions_total", "Exceptions emitted", ["kind", "status"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "recon_dead_letters_total", "Records dead-lettered", ["reason"], registry=REGISTRY
)
ENGINE_EVENTS = Counter(
    "recon_engine_events_total",
    "Engine counters (duplicates, late, replays...)",
    ["counter"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "recon_batch_seconds",
    "Time to process one batch (restore, decode, engine, transaction commit, state write)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "recon_batch_records",
    "Records per batch",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000),
    registry=REGISTRY,
)
SETTLEMENTS = Counter(
    "recon_settlements",
    "References whose window closed: matched within it (exact, split, tolerance) or not "
    "(an open MISSING_*, AMOUNT_MISMATCH or CURRENCY_MISMATCH exception)",
    ["outcome"],
    registry=REGISTRY,
)
WATERMARK = Gauge(
    "recon_watermark_timestamp_seconds",
    "Event-time watermark per partition",
    ["partition"],
    registry=REGISTRY,
)
OPEN_GROUPS = Gauge(
    "recon_open_groups",
    "Groups waiting for their counterpart within the window, per partition",
    ["partition"],
    registry=REGISTRY,
)
READY = Gauge(
    "recon_ready", "1 when that readiness check is ok, else 0", ["check"], registry=REGISTRY
)
RESTORE_SECONDS = Histogram(
    "recon_restore_seconds",
    "Duration of each state restore from the changelog",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0),
    registry=REGISTRY,
)
RESTORED_RECORDS = Counter(
    "recon_restored_records_total",
    "State changelog records applied to RocksDB by restores, per partition",
    ["partition"],
    registry=REGISTRY,
)
KAFKA_RETRIES = Counter(
    "recon_batch_retries_total",
    "Batches tried again because their Kafka transaction did not commit (a broker outage)",
    registry=REGISTRY,
)
REGISTRY_RETRIES = Counter(
    "recon_schema_registry_retries_total",
    "Batches retried because the schema registry did not answer",
    registry=REGISTRY,
)
ISOLATED = Counter(
    "recon_isolated_records_total",
    "Input records dead-lettered because the engine or their outputs failed on them "
    "(PROCESSING_ERROR); the rest of their partition went on",
    registry=REGISTRY,
)
CHUNKS = Counter(
    "recon_transactions_total",
    "Kafka transactions committed (one per chunk; a batch that releases a backlog takes several)",
    registry=REGISTRY,
)
REFETCHED = Counter(
    "recon_refetched_records_total",
    "Input records the consumer skipped (Faust, across a rebalance), read again and applied",
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "recon_transaction_commit_seconds",
    "Time to commit one Kafka transaction (wait for its records' acks, then commit)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
APPLY_SECONDS = Histogram(
    "recon_state_apply_seconds",
    "Time to write one committed transaction's state changes to RocksDB",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)

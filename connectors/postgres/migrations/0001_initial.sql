-- The sink's tables. Result tables are range-partitioned by month of event time; the
-- partition key must be in the primary key, which is fine because every id is derived
-- deterministically from its inputs, so (id, time) is as unique as the id alone.
-- Monthly partitions are created on demand by the sink; DEFAULT catches anything else.

CREATE TABLE recon_matches (
    match_id             text        NOT NULL,
    reference            text        NOT NULL,
    flow                 text        NOT NULL CHECK (flow IN ('payment', 'refund')),
    rule                 text        NOT NULL CHECK (rule IN ('exact', 'split', 'tolerance', 'late')),
    currency             char(3)     NOT NULL,
    payment_amount_minor bigint      NOT NULL,
    ledger_amount_minor  bigint      NOT NULL,
    difference_minor     bigint      NOT NULL,
    payment_event_ids    text[]      NOT NULL,
    ledger_event_ids     text[]      NOT NULL,
    first_event_time     timestamptz NOT NULL,
    matched_at           timestamptz NOT NULL,
    exception_id         text,
    written_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (match_id, first_event_time)
) PARTITION BY RANGE (first_event_time);
CREATE TABLE recon_matches_default PARTITION OF recon_matches DEFAULT;
CREATE INDEX recon_matches_reference_idx ON recon_matches (reference);
CREATE INDEX recon_matches_rule_idx ON recon_matches (rule, first_event_time);
CREATE INDEX recon_matches_exception_idx ON recon_matches (exception_id)
    WHERE exception_id IS NOT NULL;

CREATE TABLE recon_exceptions (
    exception_id         text        NOT NULL,
    reference            text        NOT NULL,
    flow                 text        NOT NULL CHECK (flow IN ('payment', 'refund')),
    kind                 text        NOT NULL CHECK (kind IN ('MISSING_LEDGER', 'MISSING_PAYMENT',
                                         'AMOUNT_MISMATCH', 'CURRENCY_MISMATCH', 'DUPLICATE_CONFLICT')),
    status               text        NOT NULL CHECK (status IN ('open', 'resolved')),
    currency             char(3)     NOT NULL,
    ledger_currency      char(3),
    payment_amount_minor bigint      NOT NULL,
    ledger_amount_minor  bigint      NOT NULL,
    payment_event_ids    text[]      NOT NULL,
    ledger_event_ids     text[]      NOT NULL,
    raised_at            timestamptz NOT NULL,
    resolved_at          timestamptz,
    detail               text        NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exception_id, raised_at)
) PARTITION BY RANGE (raised_at);
CREATE TABLE recon_exceptions_default PARTITION OF recon_exceptions DEFAULT;
CREATE INDEX recon_exceptions_reference_idx ON recon_exceptions (reference);
CREATE INDEX recon_exceptions_status_kind_idx ON recon_exceptions (status, kind);
CREATE INDEX recon_exceptions_kind_idx ON recon_exceptions (kind, raised_at);

-- Dead letters have no event time: they are partitioned by ingested_at, the Kafka timestamp
-- of the message the sink read (stable across re-reads). dead_letter_id is
-- origin:topic:partition:offset of the rejected record; re-sent copies are skipped by lookup.
CREATE TABLE recon_dead_letters (
    dead_letter_id   text        NOT NULL,
    origin           text        NOT NULL CHECK (origin IN ('worker', 'sink')),
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    key              bytea,
    value            bytea,
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    ingested_at      timestamptz NOT NULL,
    kafka_topic      text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    written_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dead_letter_id, ingested_at)
) PARTITION BY RANGE (ingested_at);
CREATE TABLE recon_dead_letters_default PARTITION OF recon_dead_letters DEFAULT;
CREATE INDEX recon_dead_letters_reason_idx ON recon_dead_letters (reason, ingested_at);
CREATE INDEX recon_dead_letters_source_idx
    ON recon_dead_letters (source_topic, source_partition, source_offset);

-- The exactly-once boundary: the last offset written, per group and topic-partition,
-- updated in the same transaction as the rows.
CREATE TABLE recon_sink_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    last_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

"""The PostgreSQL backend: one transaction per batch, offsets stored with the rows.

Per batch: (1) make sure the monthly partitions exist (own short transaction), (2) in ONE
transaction: binary COPY into session-scoped temporary staging tables, ``INSERT ... SELECT ...
ON CONFLICT`` into the targets, upsert the offsets, commit. Matches are first COPYed straight
into their table (twice as fast); only a batch holding a match already stored goes through
the staging table.

* matches: immutable once written (ids are deterministic), so ``DO NOTHING``;
* exceptions: ``resolved`` wins and never goes back to ``open``, in any arrival order;
* dead letters: skipped when the same ``dead_letter_id`` is already stored.

Errors: a connection-level or transient error raises :class:`SinkUnavailableError` (the caller
keeps the batch and retries). A data error (SQLSTATE class 22/23) bisects the batch in
order, so the bad record ends in ``recon_dead_letters`` (reason SINK_REJECTED) and the rest
is written; halves are committed in offset order, so the stored offsets stay consistent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

from connectors import metrics
from connectors.base import BatchResult, Sink, SinkRecord, TopicPartitionKey
from connectors.exceptions import RecordRejectedError, SinkUnavailableError
from connectors.postgres import generations
from connectors.postgres.migrate import migrate
from connectors.postgres.partitions import PartitionManager
from connectors.postgres.pool import Conn, ConnectionPool
from connectors.postgres.rows import (
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_TYPES,
    EXCEPTION_COLUMNS,
    EXCEPTION_TYPES,
    MATCH_COLUMNS,
    MATCH_TYPES,
    PreparedBatch,
    RowBuilder,
)
from connectors.postgres.settings import SinkSettings
from streams.contract.decode import RejectReason
from streams.contract.registry import SchemaRegistry

log = logging.getLogger(__name__)

_DATA_ERROR_CLASSES = frozenset({"22", "23"})


def _stage_ddl(name: str, columns: Sequence[str], types: Sequence[str]) -> sql.Composed:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
        for c, t in zip(columns, types, strict=True)
    )
    return sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
        sql.Identifier(name), cols
    )


def _copy_sql(name: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _cols(columns: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


_STAGES = (
    ("recon_stage_matches", MATCH_COLUMNS, MATCH_TYPES),
    ("recon_stage_exceptions", EXCEPTION_COLUMNS, EXCEPTION_TYPES),
    ("recon_stage_dead_letters", DEAD_LETTER_COLUMNS, DEAD_LETTER_TYPES),
)

_INSERT_MATCHES = sql.SQL(
    "INSERT INTO recon_matches ({c}) SELECT {c} FROM recon_stage_matches"
    " ON CONFLICT (match_id, first_event_time) DO NOTHING"
).format(c=_cols(MATCH_COLUMNS))

_INSERT_EXCEPTIONS = sql.SQL(
    "INSERT INTO recon_exceptions AS t ({c}) SELECT {c} FROM recon_stage_exceptions"
    " ON CONFLICT (exception_id, raised_at) DO UPDATE SET {s}, updated_at = now()"
    # Only open -> resolved moves a row: resolved is terminal, open over open changes nothing.
    " WHERE t.status = 'open' AND EXCLUDED.status = 'resolved'"
).format(
    c=_cols(EXCEPTION_COLUMNS),
    s=sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in EXCEPTION_COLUMNS
        if c not in ("exception_id", "raised_at")
    ),
)

_INSERT_DEAD_LETTERS = sql.SQL(
    "INSERT INTO recon_dead_letters ({c}) SELECT {c} FROM recon_stage_dead_letters s"
    " WHERE NOT EXISTS (SELECT 1 FROM recon_dead_letters d WHERE d.dead_letter_id = s.dead_letter_id)"
).format(c=_cols(DEAD_LETTER_COLUMNS))

_UPSERT_OFFSETS = (
    "INSERT INTO recon_sink_offsets AS o (consumer_group, topic, partition, last_offset)"
    " SELECT %s, unnest(%s::text[]), unnest(%s::int[]), unnest(%s::bigint[])"
    " ON CONFLICT (consumer_group, topic, partition) DO UPDATE"
    " SET last_offset = GREATEST(o.last_offset, EXCLUDED.last_offset), updated_at = now()"
)


def _is_data_error(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    return state is not None and state[:2] in _DATA_ERROR_CLASSES


class PostgresSink(Sink):
    def __init__(self, settings: SinkSettings, registry: SchemaRegistry | None = None) -> None:
        self.settings = settings
        self._rows = RowBuilder(registry)
        self._partitions = PartitionManager(
            settings.schema, settings.partitions_past_months, settings.partitions_future_months
        )
        self._pool = ConnectionPool(
            settings.database_url,
            settings.schema,
            settings.pool_size,
            settings.connect_timeout_ms // 1000,
            setup=self._setup_connection,
        )

    @staticmethod
    def _setup_connection(conn: Conn) -> None:
        for name, columns, types in _STAGES:
            conn.execute(_stage_ddl(name, columns, types))

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Apply migrations and premake partitions. Raises SinkUnavailableError if PG is down."""
        try:
            with psycopg.connect(
                self.settings.database_url,
                autocommit=True,
                connect_timeout=max(1, self.settings.connect_timeout_ms // 1000),
            ) as conn:
                migrate(conn, self.settings.schema)
                generations.ensure(conn, self.settings.readers, self.settings.generation)
            with self._pool.connection() as conn:
                self._partitions.premake(conn, self.settings.partitions_ahead)
        except psycopg.Error as exc:
            raise SinkUnavailableError(f"PostgreSQL unavailable at start: {exc}") from exc

    def close(self) -> None:
        self._pool.close()

    # -- offsets ---------------------------------------------------------------------------

    def stored_offsets(
        self, partitions: Iterable[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, int]:
        keys = list(partitions)
        if not keys:
            return {}
        try:
            with self._pool.connection() as conn:
                rows = conn.execute(
                    "SELECT topic, partition, last_offset FROM recon_sink_offsets"
                    " WHERE consumer_group = %s AND topic = ANY(%s)",
                    [self.settings.group_id, sorted({t for t, _ in keys})],
                ).fetchall()
        except psycopg.Error as exc:
            raise SinkUnavailableError(f"cannot read stored offsets: {exc}") from exc
        wanted = set(keys)
        out: dict[TopicPartitionKey, int] = {}
        for topic, partition, last in rows:
            k = (str(topic), int(str(partition)))
            if k in wanted:
                out[k] = int(str(last))
        return out

    # -- writing ---------------------------------------------------------------------------

    def prepare(self, records: Sequence[SinkRecord]) -> PreparedBatch:
        return self._rows.prepare(records)

    def write_batch(self, records: Sequence[SinkRecord], prepared: object = None) -> BatchResult:
        if not records:
            return BatchResult({}, 0, 0)
        started = time.perf_counter()
        result = self._write_or_bisect(
            records, prepared if isinstance(prepared, PreparedBatch) else None
        )
        metrics.BATCHES.inc()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_RECORDS.observe(len(records))
        metrics.LAST_COMMIT.set(time.time())
        return result

    def write_prepared(self, prepared: PreparedBatch) -> BatchResult:
        """Write an already prepared batch (the bench uses this to time PostgreSQL alone)."""
        try:
            return self._commit(prepared)
        except RecordRejectedError as exc:
            raise SinkUnavailableError(str(exc)) from exc

    def _write_or_bisect(
        self, records: Sequence[SinkRecord], prepared: PreparedBatch | None = None
    ) -> BatchResult:
        if prepared is None:
            prepared = self._rows.prepare(records)
        try:
            return self._commit(prepared)
        except RecordRejectedError as exc:
            if len(records) == 1:
                log.warning("record %s rejected by PostgreSQL: %s", records[0], exc)
                alone = self._rows.prepare(())
                alone.offsets = prepared.offsets
                RowBuilder.add_sink_dead_letter(
                    alone, records[0], RejectReason.SINK_REJECTED, str(exc)
                )
                return self._commit(alone.seal())
            mid = len(records) // 2
            first = self._write_or_bisect(records[:mid])
            second = self._write_or_bisect(records[mid:])
            written = dict(first.written)
            for table, n in second.written.items():
                written[table] = written.get(table, 0) + n
            return BatchResult(
                written,
                first.dead_letters + second.dead_letters,
                first.transactions + second.transactions,
            )

    def _commit(self, batch: PreparedBatch) -> BatchResult:
        try:
            with self._pool.connection() as conn:
                self._partitions.ensure(conn, batch.months())
                with conn.transaction():
                    # First: a sink whose generation a replay retired writes nothing more.
                    generations.fence(conn, self.settings.readers, self.settings.generation)
                    written = self._write_rows(conn, batch)
                    self._write_offsets(conn, batch)
        except psycopg.Error as exc:
            if _is_data_error(exc):
                metrics.DATABASE_ERRORS.labels("rejected").inc()
                raise RecordRejectedError(str(exc).strip()) from exc
            metrics.DATABASE_ERRORS.labels("unavailable").inc()
            raise SinkUnavailableError(str(exc).strip() or type(exc).__name__) from exc
        for table, n in written.items():
            metrics.ROWS_WRITTEN.labels(table).inc(n)
        for reason in batch.sink_dead_letter_reasons:
            metrics.DEAD_LETTERS.labels(reason).inc()
        return BatchResult(written, len(batch.sink_dead_letter_reasons), 1)

    @staticmethod
    def _copy(conn: Conn, table: str, columns: Sequence[str], stream: bytes) -> None:
        """COPY a binary stream (``binary_copy.encode``) into ``table``."""
        with conn.cursor() as cur, cur.copy(_copy_sql(table, columns)) as copy:
            copy.write(stream)

    def _write_rows(self, conn: Conn, batch: PreparedBatch) -> dict[str, int]:
        written: dict[str, int] = {}
        plan = (
            ("recon_matches", len(batch.matches), _STAGES[0], _INSERT_MATCHES),
            ("recon_exceptions", len(batch.exceptions), _STAGES[1], _INSERT_EXCEPTIONS),
            ("recon_dead_letters", len(batch.dead_letters), _STAGES[2], _INSERT_DEAD_LETTERS),
        )
        for table, count, (stage, columns, _), insert in plan:
            if not count:
                continue
            stream = batch.streams[table]
            if table == "recon_matches" and self._copy_direct(conn, table, columns, stream):
                written[table] = count
                continue
            self._copy(conn, stage, columns, stream)
            cur = conn.execute(insert)
            written[table] = max(cur.rowcount, 0)
        return written

    def _copy_direct(self, conn: Conn, table: str, columns: Sequence[str], stream: bytes) -> bool:
        """COPY straight into the table, the fast path: a match is written once, so its row
        is almost never there already (only a replay or a redelivered re-emission brings it
        again). When one is, the COPY fails on the key and is rolled back to its savepoint,
        and the caller takes the staging path, which skips stored rows. Matches only: an
        exception's row changes (open, then resolved), which the staging path's upsert does."""
        try:
            with conn.transaction():  # a savepoint inside the batch's transaction
                self._copy(conn, table, columns, stream)
        except psycopg.errors.UniqueViolation:
            metrics.COPY_FALLBACKS.labels(table).inc()
            return False
        return True

    def _write_offsets(self, conn: Conn, batch: PreparedBatch) -> None:
        items = sorted(batch.offsets.items())
        conn.execute(
            _UPSERT_OFFSETS,
            [
                self.settings.group_id,
                [t for (t, _), _ in items],
                [p for (_, p), _ in items],
                [o for _, o in items],
            ],
        )

"""Monthly range partitions, created on demand before a batch needs them.

A month inside the configured window gets its own partition (``<table>_pYYYYMM``); any other
month goes to the DEFAULT partition, so an unexpected date never fails a batch. Creation runs
in its own short transaction under an advisory lock (two sinks may race for the same month);
if the DEFAULT partition already holds rows of that month, PostgreSQL refuses to carve it out
and the month simply stays in DEFAULT. Known months are cached in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import psycopg
from psycopg import errors, sql

from connectors.postgres.migrate import lock_key

log = logging.getLogger(__name__)

PARTITIONED_TABLES = ("recon_matches", "recon_exceptions", "recon_dead_letters")

Month = tuple[int, int]


def month_index(month: Month) -> int:
    return month[0] * 12 + month[1] - 1


def month_from_index(index: int) -> Month:
    return (index // 12, index % 12 + 1)


def partition_name(table: str, month: Month) -> str:
    return f"{table}_p{month[0]:04d}{month[1]:02d}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def current_month(now: datetime | None = None) -> Month:
    now = now if now is not None else utc_now()
    return (now.year, now.month)


class PartitionManager:
    def __init__(
        self,
        schema: str,
        past_months: int,
        future_months: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``clock``: the wall clock (UTC) the window of own partitions is counted from."""
        self._schema = schema
        self._past = past_months
        self._future = future_months
        self._clock = clock
        # (table, month) -> True when the month has its own partition, False when it is in DEFAULT
        self._known: dict[tuple[str, Month], bool] = {}

    def in_window(self, month: Month) -> bool:
        now = month_index(current_month(self._clock()))
        return now - self._past <= month_index(month) <= now + self._future

    def premake(self, conn: psycopg.Connection[tuple[object, ...]], months_ahead: int) -> None:
        now = month_index(current_month(self._clock()))
        months = {month_from_index(now + i) for i in range(months_ahead + 1)}
        self.ensure(conn, dict.fromkeys(PARTITIONED_TABLES, months))

    def ensure(
        self, conn: psycopg.Connection[tuple[object, ...]], needs: Mapping[str, Iterable[Month]]
    ) -> None:
        """Create the missing partitions for the months each table is about to receive."""
        todo = [
            (table, month)
            for table, months in needs.items()
            for month in sorted(set(months))
            if (table, month) not in self._known
        ]
        for table, month in todo:
            if not self.in_window(month):
                self._known[(table, month)] = False
                continue
            self._known[(table, month)] = self._create(conn, table, month)

    def _create(
        self, conn: psycopg.Connection[tuple[object, ...]], table: str, month: Month
    ) -> bool:
        start = datetime(month[0], month[1], 1, tzinfo=UTC)
        nxt = month_from_index(month_index(month) + 1)
        end = datetime(nxt[0], nxt[1], 1, tzinfo=UTC)
        name = partition_name(table, month)
        stmt = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
        ).format(
            sql.Identifier(name),
            sql.Identifier(table),
            sql.Literal(start.isoformat()),
            sql.Literal(end.isoformat()),
        )
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    [lock_key(self._schema, "partitions")],
                )
                conn.execute(stmt)
        except errors.CheckViolation:
            # DEFAULT already holds rows of this month: leave them there, keep routing there.
            log.warning("month %04d-%02d of %s stays in the DEFAULT partition", *month, table)
            return False
        return True

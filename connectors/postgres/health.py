"""The sink's view of PostgreSQL for ops: its readiness checks and the figures read from it.

One connection of its own (not the pool's: a probe must not wait behind a batch), opened on
demand and dropped on any error. Every 30 s it also reads the exception-ageing figures and the
last ``recon verify`` run into the sink's gauges.

``recon verify`` records its runs with :func:`record_verify_run`, in the schema readers query,
in a table it creates on first use: Prometheus learns of a failing verify from the sink,
without a push gateway.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from connectors import metrics
from connectors.postgres.migrate import load_migrations
from connectors.postgres.settings import SinkSettings
from streams.contract.model import ExceptionKind

STATS_INTERVAL_S = 30.0

_VERIFY_TABLE = """CREATE TABLE IF NOT EXISTS {}.recon_verify_runs (
    ran_at    timestamptz PRIMARY KEY DEFAULT clock_timestamp(),
    ok        boolean     NOT NULL,
    problems  integer     NOT NULL CHECK (problems >= 0),
    inputs    bigint      NOT NULL CHECK (inputs >= 0)
)"""


def record_verify_run(database_url: str, schema: str, problems: int, inputs: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL(_VERIFY_TABLE).format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.recon_verify_runs (ok, problems, inputs) VALUES (%s, %s, %s)"
            ).format(sql.Identifier(schema)),
            [problems == 0, problems, inputs],
        )


class DatabaseProbe:
    def __init__(self, settings: SinkSettings, timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._stats_due = 0.0
        self._shipped = {m.version for m in load_migrations()}

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.settings.database_url,
                autocommit=True,
                connect_timeout=max(1, int(self.timeout_s)),
                options=f"-c statement_timeout={int(self.timeout_s * 1000)}",
            )
        return self._conn

    def _query(
        self, query: sql.Composed | sql.SQL | str, params: list[Any] | None = None
    ) -> list[Any]:
        try:
            return self._connection().execute(query, params).fetchall()
        except psycopg.Error:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            raise

    def postgres(self) -> str:
        self._query("SELECT 1")
        return "SELECT 1 answered"

    def migrations(self) -> str:
        schema = sql.Identifier(self.settings.schema)
        rows = self._query(sql.SQL("SELECT version FROM {}.schema_migrations").format(schema))
        applied = {int(r[0]) for r in rows}
        missing = sorted(self._shipped - applied)
        if missing:
            raise LookupError(f"migrations not applied: {missing}")
        self._refresh_stats()
        return f"{len(self._shipped)} of {len(self._shipped)} applied"

    def _refresh_stats(self) -> None:
        now = time.monotonic()
        if now < self._stats_due:
            return
        self._stats_due = now + STATS_INTERVAL_S
        schema = sql.Identifier(self.settings.schema)
        rows = self._query(
            sql.SQL(
                "SELECT kind, count(*), extract(epoch FROM now() - min(raised_at))"
                " FROM {}.recon_exceptions WHERE status = 'open' GROUP BY kind"
            ).format(schema)
        )
        seen = {str(kind): (int(n), float(age)) for kind, n, age in rows}
        for kind in ExceptionKind:  # every kind, so a cleared kind drops to 0
            n, age = seen.get(kind.value, (0, 0.0))
            metrics.OPEN_EXCEPTIONS.labels(kind.value).set(n)
            metrics.OLDEST_OPEN_EXCEPTION.labels(kind.value).set(max(age, 0.0))
        readers = sql.Identifier(self.settings.readers)
        exists = self._query(
            "SELECT to_regclass(%s) IS NOT NULL", [f'"{self.settings.readers}".recon_verify_runs']
        )
        if exists and exists[0][0]:
            last = self._query(
                sql.SQL(
                    "SELECT extract(epoch FROM ran_at), problems FROM {}.recon_verify_runs"
                    " ORDER BY ran_at DESC LIMIT 1"
                ).format(readers)
            )
            if last:
                metrics.VERIFY_LAST_RUN.set(float(last[0][0]))
                metrics.VERIFY_PROBLEMS.set(int(last[0][1]))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

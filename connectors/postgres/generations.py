"""Which generation readers see, switched in one transaction (streams/generation.py).

``recon_generations`` in the readers' schema lists every generation: ``replaying`` while a
replay catches up, ``live`` for the one readers see, ``retired`` after it was replaced.
Generation 0 writes its tables into the readers' schema itself. A switch, in one transaction:
marks the new generation live and the old one retired, removes what readers saw (generation
0's tables, or the views of a later one) and puts views of the new generation's tables in
their place. PostgreSQL's DDL is transactional, so a reader sees the old generation or the new
one, never a mix and never neither.

Fencing: every sink batch reads its generation's row ``FOR SHARE`` in its own transaction and
refuses to write once it is retired. The switch's update of that row waits for a batch in
flight, and a retired sink's next batch sees the change, so a sink of a replaced generation
never writes after the switch (it stops with GenerationRetiredError).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from connectors.exceptions import SinkError

RESULT_TABLES = ("recon_matches", "recon_exceptions", "recon_dead_letters")
# Generation 0's own bookkeeping in the readers' schema, dropped with its tables.
_GENERATION_0_TABLES = (*RESULT_TABLES, "recon_sink_offsets", "schema_migrations")

Conn = psycopg.Connection[Any]


class GenerationError(SinkError):
    """A generation is unknown, or not in the state an operation needs."""


class GenerationRetiredError(GenerationError):
    """This sink's generation was replaced by a replay: it must not write any more."""


def _table(readers: str) -> sql.Composed:
    return sql.SQL("{}.recon_generations").format(sql.Identifier(readers))


def ensure(conn: Conn, readers: str, generation: int) -> None:
    """Create the table; generation 0 registers itself live the first time a sink starts."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(readers)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " generation integer PRIMARY KEY CHECK (generation >= 0),"
            " status text NOT NULL CHECK (status IN ('replaying', 'live', 'retired')),"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " switched_at timestamptz,"
            # The layout a replay or scale gave it (NULL: the deployment's own settings).
            " partitions integer, payments_topic text, ledger_topic text)"
        ).format(_table(readers))
    )
    if generation == 0:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (generation, status) SELECT 0, 'live'"
                " WHERE NOT EXISTS (SELECT 1 FROM {}) ON CONFLICT DO NOTHING"
            ).format(_table(readers), _table(readers))
        )


def fence(conn: Conn, readers: str, generation: int) -> None:
    """Inside a sink batch's transaction: raise unless this generation may still write."""
    row = conn.execute(
        sql.SQL("SELECT status FROM {} WHERE generation = %s FOR SHARE").format(_table(readers)),
        [generation],
    ).fetchone()
    if row is None:
        raise GenerationError(
            f"generation {generation} is not registered in {readers}.recon_generations: "
            "a generation other than 0 is started by `recon replay`"
        )
    if row[0] == "retired":
        raise GenerationRetiredError(
            f"generation {generation} was replaced by a replay and is retired: deploy the live "
            "generation (RECON_GENERATION) and stop this one"
        )


def statuses(conn: Conn, readers: str) -> dict[int, str]:
    found = conn.execute("SELECT to_regclass(%s)", [f"{readers}.recon_generations"]).fetchone()
    if found is None or found[0] is None:
        return {}
    rows = conn.execute(
        sql.SQL("SELECT generation, status FROM {}").format(_table(readers))
    ).fetchall()
    return {int(g): str(s) for g, s in rows}


def live(conn: Conn, readers: str) -> int:
    """The generation readers see (0 before any replay)."""
    found = [g for g, s in statuses(conn, readers).items() if s == "live"]
    return found[0] if found else 0


@dataclass(frozen=True, slots=True)
class Layout:
    """The input partitioning a generation runs on."""

    partitions: int
    payments_topic: str
    ledger_topic: str


def layout(conn: Conn, readers: str, generation: int) -> Layout | None:
    if generation not in statuses(conn, readers):
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT partitions, payments_topic, ledger_topic FROM {} WHERE generation = %s"
        ).format(_table(readers)),
        [generation],
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return Layout(int(row[0]), str(row[1]), str(row[2]))


def begin(conn: Conn, readers: str, generation: int, shape: Layout | None = None) -> None:
    """Register a generation a replay is about to build, on the input layout ``shape``."""
    with conn.transaction():
        ensure(conn, readers, 0)
        known = statuses(conn, readers)
        busy = [g for g, s in known.items() if s == "replaying" and g != generation]
        if busy:
            raise GenerationError(f"generation {busy[0]} is being replayed already")
        if known.get(generation, "replaying") != "replaying":
            raise GenerationError(f"generation {generation} is {known[generation]} already")
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (generation, status, partitions, payments_topic, ledger_topic)"
                " VALUES (%s, 'replaying', %s, %s, %s) ON CONFLICT (generation) DO NOTHING"
            ).format(_table(readers)),
            [
                generation,
                shape.partitions if shape else None,
                shape.payments_topic if shape else None,
                shape.ledger_topic if shape else None,
            ],
        )


def switch(conn: Conn, readers: str, generation: int, schema: str) -> int:
    """Make ``generation`` (its tables in ``schema``) the one readers see; returns the one
    it replaced, now retired."""
    with conn.transaction():
        rows = conn.execute(
            sql.SQL("SELECT generation, status FROM {} FOR UPDATE").format(_table(readers))
        ).fetchall()
        known = {int(g): str(s) for g, s in rows}
        if known.get(generation) != "replaying":
            raise GenerationError(
                f"generation {generation} is {known.get(generation, 'unknown')}, not replaying"
            )
        old = next((g for g, s in known.items() if s == "live"), 0)
        conn.execute(
            sql.SQL("UPDATE {} SET status = 'retired', switched_at = now() WHERE generation = %s")
            .format(_table(readers)),
            [old],
        )  # fmt: skip
        conn.execute(
            sql.SQL("UPDATE {} SET status = 'live', switched_at = now() WHERE generation = %s")
            .format(_table(readers)),
            [generation],
        )  # fmt: skip
        ident = sql.Identifier(readers)
        if old == 0:
            for table in _GENERATION_0_TABLES:
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(
                        ident, sql.Identifier(table)
                    )
                )
        for table in RESULT_TABLES:
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}.{}").format(ident, sql.Identifier(table)))
            conn.execute(
                sql.SQL("CREATE VIEW {}.{} AS SELECT * FROM {}.{}").format(
                    ident, sql.Identifier(table), sql.Identifier(schema), sql.Identifier(table)
                )
            )
    return old

"""Compare the sink's PostgreSQL tables with a simulation's ground truth, row by row."""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import psycopg
from psycopg import sql

from streams.contract.records import EXCEPTION, MATCH, TEXT_ARRAY, RecordLayout
from streams.simulate.truth import Truth

# The fields the ground truth knows (streams/simulate/truth.py), read back by name: each must be
# a field of its record's schema, the one source of the tables' columns.
MATCH_FIELDS: Final = (
    "reference", "flow", "rule", "currency", "payment_event_ids", "ledger_event_ids",
    "payment_amount_minor", "ledger_amount_minor", "exception_id",
)  # fmt: skip
EXCEPTION_FIELDS: Final = (
    "reference", "flow", "kind", "status", "payment_event_ids", "ledger_event_ids",
)  # fmt: skip


def _select(layout: RecordLayout[Any], id_column: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    """The columns to read: the id, then ``fields``; refuses a name the schema does not have."""
    unknown = [c for c in (id_column, *fields) if c not in layout.names]
    if unknown:
        raise ValueError(f"{layout.schema.name} has no fields {unknown}")
    return (id_column, *fields)


def _by_id(
    conn: psycopg.Connection[Any], table: str, layout: RecordLayout[Any], columns: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Each row of ``table`` as {field: value} by its id (the first column); arrays sorted, as
    the ground truth holds them."""
    arrays = {f.name for f in layout.fields if f.kind == TEXT_ARRAY}
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
    )
    return {
        row[0]: {
            c: sorted(v) if c in arrays else v for c, v in zip(columns[1:], row[1:], strict=True)
        }
        for row in conn.execute(query)
    }


_MATCH_COLUMNS: Final = _select(MATCH, "match_id", MATCH_FIELDS)
_EXCEPTION_COLUMNS: Final = _select(EXCEPTION, "exception_id", EXCEPTION_FIELDS)


def table_state(
    conn: psycopg.Connection[Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, int]]:
    matches = _by_id(conn, "recon_matches", MATCH, _MATCH_COLUMNS)
    exceptions = _by_id(conn, "recon_exceptions", EXCEPTION, _EXCEPTION_COLUMNS)
    dead = Counter(
        {
            str(reason): int(n)
            for reason, n in conn.execute(
                "SELECT reason, count(*) FROM recon_dead_letters WHERE origin = 'worker' GROUP BY reason"
            )
        }
    )
    return matches, exceptions, dict(dead)


def row_counts(conn: psycopg.Connection[Any]) -> tuple[int, int, int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM recon_matches), (SELECT count(*) FROM recon_exceptions),"
        " (SELECT count(*) FROM recon_exceptions WHERE status = 'resolved'),"
        " (SELECT count(*) FROM recon_dead_letters)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def differences(truth: Truth, conn: psycopg.Connection[Any], limit: int = 10) -> list[str]:
    matches, exceptions, dead = table_state(conn)
    problems: list[str] = []
    for name, want, got in (
        ("match", truth.matches, matches),
        ("exception", truth.exceptions, exceptions),
    ):
        problems += [f"missing {name} {i}" for i in sorted(want.keys() - got.keys())[:limit]]
        problems += [f"unexpected {name} {i}" for i in sorted(got.keys() - want.keys())[:limit]]
        problems += [
            f"wrong {name} {i}: want {want[i]}, got {got[i]}"
            for i in sorted(want.keys() & got.keys())
            if want[i] != got[i]
        ][:limit]
    if dead != truth.dead_letters:
        problems.append(f"dead letters by reason: want {truth.dead_letters}, got {dead}")
    return problems


def expected_counts(truth: Truth) -> tuple[int, int, int, int]:
    resolved = sum(1 for e in truth.exceptions.values() if e["status"] == "resolved")
    return len(truth.matches), len(truth.exceptions), resolved, sum(truth.dead_letters.values())

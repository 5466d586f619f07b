"""Compare the sink's PostgreSQL tables with a simulation's ground truth, row by row."""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg

from streams.simulate.truth import Truth


def table_state(
    conn: psycopg.Connection[Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, int]]:
    matches = {
        row[0]: {
            "reference": row[1],
            "flow": row[2],
            "rule": row[3],
            "currency": row[4],
            "payment_event_ids": sorted(row[5]),
            "ledger_event_ids": sorted(row[6]),
            "payment_amount_minor": row[7],
            "ledger_amount_minor": row[8],
            "exception_id": row[9],
        }
        for row in conn.execute(
            "SELECT match_id, reference, flow, rule, currency, payment_event_ids, ledger_event_ids,"
            " payment_amount_minor, ledger_amount_minor, exception_id FROM recon_matches"
        )
    }
    exceptions = {
        row[0]: {
            "reference": row[1],
            "flow": row[2],
            "kind": row[3],
            "status": row[4],
            "payment_event_ids": sorted(row[5]),
            "ledger_event_ids": sorted(row[6]),
        }
        for row in conn.execute(
            "SELECT exception_id, reference, flow, kind, status, payment_event_ids, ledger_event_ids"
            " FROM recon_exceptions"
        )
    }
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

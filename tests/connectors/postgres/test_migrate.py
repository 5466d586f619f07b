"""The sink's migrations on the real PostgreSQL server: upgrading a database that has rows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import psycopg
import pytest

from connectors.postgres.migrate import load_migrations, migrate
from tests.connectors.conftest import connect

JAN = datetime(2026, 1, 15, tzinfo=UTC)
FAR = datetime(2300, 1, 1, tzinfo=UTC)  # no monthly partition: DEFAULT
KINDS = ("AMOUNT_OVERFLOW", "GROUP_LIMIT")


def _version_1(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """A schema as a sink of version 1 left it: migration 0001 applied and recorded, a monthly
    partition made, and rows in it and in DEFAULT."""
    first = load_migrations()[0]
    assert (first.version, first.name) == (1, "initial")
    conn.execute(first.sql.encode())
    conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
        [first.version, first.name, first.checksum],
    )
    for table in ("recon_exceptions", "recon_dead_letters"):
        conn.execute(
            f"CREATE TABLE {table}_p202601 PARTITION OF {table}"
            " FOR VALUES FROM ('2026-01-01 00:00Z') TO ('2026-02-01 00:00Z')"
        )
    for i, raised in enumerate((JAN, FAR)):
        _insert_exception(conn, f"old-{i}", "MISSING_LEDGER", raised)
    conn.execute(
        "INSERT INTO recon_dead_letters (dead_letter_id, origin, source_topic, source_partition,"
        " source_offset, key, value, reason, detail, ingested_at, kafka_topic, kafka_partition,"
        " kafka_offset) VALUES ('worker:payments:0:1', 'worker', 'payments', 0, 1, 'k', 'v',"
        " 'BAD_JSON', 'old', %s, 'recon.dlq', 0, 1)",
        [JAN],
    )


def _insert_exception(
    conn: psycopg.Connection[tuple[object, ...]], exception_id: str, kind: str, raised: datetime
) -> None:
    conn.execute(
        "INSERT INTO recon_exceptions (exception_id, reference, flow, kind, status, currency,"
        " payment_amount_minor, ledger_amount_minor, payment_event_ids, ledger_event_ids,"
        " raised_at, detail) VALUES (%s, 'REF', 'payment', %s, 'open', 'EUR', 1, 0,"
        " ARRAY['p'], ARRAY[]::text[], %s, 'd')",
        [exception_id, kind, raised],
    )


def test_0002_upgrades_a_version_1_database_with_rows(database_url: str, pg_schema: str) -> None:
    with connect(database_url, pg_schema) as conn:
        _version_1(conn)
        assert migrate(conn, pg_schema) == [2, 3]
        assert migrate(conn, pg_schema) == []  # applied once

        # 0003: the open exceptions' index, on the parent and on every partition, old ones too.
        indexed = conn.execute(
            "SELECT tablename FROM pg_indexes WHERE schemaname = %s"
            " AND indexdef LIKE '%%(kind, raised_at) WHERE (status = ''open''::text)%%'"
            " ORDER BY 1",
            [pg_schema],
        ).fetchall()
        assert [t for (t,) in indexed] == [
            "recon_exceptions",
            "recon_exceptions_default",
            "recon_exceptions_p202601",
        ]

        # Old rows are untouched; old dead letters have no sizes or digests.
        assert conn.execute(
            "SELECT exception_id, kind FROM recon_exceptions ORDER BY exception_id"
        ).fetchall() == [("old-0", "MISSING_LEDGER"), ("old-1", "MISSING_LEDGER")]
        assert conn.execute(
            "SELECT detail, key_size, value_size, key_sha256, value_sha256 FROM recon_dead_letters"
        ).fetchall() == [("old", None, None, None, None)]

        # The new kinds go into a monthly partition and into DEFAULT; other kinds still do not.
        for kind in KINDS:
            for raised, where in ((JAN, "p202601"), (FAR, "default")):
                _insert_exception(conn, f"{kind}-{where}", kind, raised)
                with pytest.raises(psycopg.errors.CheckViolation):
                    _insert_exception(conn, f"bad-{where}", "NOT_A_KIND", raised)
        placed = conn.execute(
            "SELECT exception_id, tableoid::regclass::text FROM recon_exceptions"
            " WHERE kind <> 'MISSING_LEDGER' ORDER BY exception_id"
        ).fetchall()
        assert placed == [
            ("AMOUNT_OVERFLOW-default", "recon_exceptions_default"),
            ("AMOUNT_OVERFLOW-p202601", "recon_exceptions_p202601"),
            ("GROUP_LIMIT-default", "recon_exceptions_default"),
            ("GROUP_LIMIT-p202601", "recon_exceptions_p202601"),
        ]

        # Every partition has exactly one kind check, inherited from the parent.
        checks = conn.execute(
            "SELECT c.conrelid::regclass::text, c.conislocal FROM pg_constraint c"
            " JOIN pg_namespace n ON n.oid = c.connamespace"
            " WHERE n.nspname = %s AND c.contype = 'c'"
            " AND pg_get_constraintdef(c.oid) LIKE '%%kind%%' ORDER BY 1",
            [pg_schema],
        ).fetchall()
        assert checks == [
            ("recon_exceptions", True),
            ("recon_exceptions_default", False),
            ("recon_exceptions_p202601", False),
        ]

        # The new dead-letter columns take sizes and lower-case hex SHA-256 only.
        digest = hashlib.sha256(b"k").hexdigest()
        conn.execute(
            "UPDATE recon_dead_letters SET key_size = 1, value_size = 0, key_sha256 = %s,"
            " value_sha256 = %s",
            [digest, hashlib.sha256(b"").hexdigest()],
        )
        for column, bad in (
            ("key_size", -1),
            ("value_size", -5),
            ("key_sha256", digest.upper()),
            ("value_sha256", digest[:-1]),
        ):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(f"UPDATE recon_dead_letters SET {column} = %s", [bad])

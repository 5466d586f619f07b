"""The partition manager (connectors/postgres/partitions.py) with its clock set by the test.

The window is counted from the clock's month; the SQL runs on the real PostgreSQL server, in a
schema of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from connectors.postgres.migrate import migrate
from connectors.postgres.partitions import (
    PARTITIONED_TABLES,
    Month,
    PartitionManager,
    month_from_index,
    month_index,
    partition_name,
)

Conn = psycopg.Connection[tuple[object, ...]]
MARCH_2026 = datetime(2026, 3, 15, 12, tzinfo=UTC)


def at(now: datetime) -> PartitionManager:
    return PartitionManager("test", past_months=2, future_months=1, clock=lambda: now)


def test_month_arithmetic_crosses_years() -> None:
    assert month_from_index(month_index((2025, 12)) + 1) == (2026, 1)
    assert month_from_index(month_index((2026, 1)) - 1) == (2025, 12)
    assert all(month_from_index(month_index((2026, m))) == (2026, m) for m in range(1, 13))
    assert partition_name("recon_matches", (2026, 3)) == "recon_matches_p202603"


def test_the_window_is_counted_from_the_clock() -> None:
    manager = at(MARCH_2026)
    inside = [(2026, 1), (2026, 2), (2026, 3), (2026, 4)]
    assert [m for m in [(2025, 12), *inside, (2026, 5)] if manager.in_window(m)] == inside
    # In January the two past months are in the year before.
    january = at(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    assert january.in_window((2025, 11))
    assert not january.in_window((2025, 10))
    assert january.in_window((2026, 2))
    assert not january.in_window((2026, 3))


def test_the_window_moves_with_the_clock() -> None:
    now = [MARCH_2026]
    manager = PartitionManager("test", past_months=0, future_months=0, clock=lambda: now[0])
    assert manager.in_window((2026, 3))
    now[0] = datetime(2026, 4, 1, tzinfo=UTC)
    assert not manager.in_window((2026, 3))
    assert manager.in_window((2026, 4))


@pytest.fixture
def conn(database_url: str, pg_schema: str) -> Iterator[Conn]:
    with psycopg.connect(database_url, options=f"-csearch_path={pg_schema}", autocommit=True) as c:
        c.execute(
            "CREATE TABLE events (t timestamptz NOT NULL, n int) PARTITION BY RANGE (t);"
            "CREATE TABLE events_default PARTITION OF events DEFAULT"
        )
        yield c


def partitions_of(conn: Conn, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        [table],
    ).fetchall()
    return {str(r[0]) for r in rows}


def where_rows_are(conn: Conn) -> dict[int, str]:
    rows = conn.execute("SELECT n, tableoid::regclass::text FROM events").fetchall()
    return {int(str(n)): str(t) for n, t in rows}


def test_months_in_the_window_get_their_own_partition_and_the_rest_go_to_default(
    conn: Conn,
) -> None:
    manager = at(MARCH_2026)
    months: list[Month] = [(2026, 3), (2026, 4), (2026, 5), (2025, 6)]
    manager.ensure(conn, {"events": months})
    assert partitions_of(conn, "events") == {"events_default", "events_p202603", "events_p202604"}

    conn.execute(
        "INSERT INTO events VALUES ('2026-03-31T23:59:59Z', 1), ('2026-04-01T00:00:00Z', 2),"
        " ('2026-05-01T00:00:00Z', 3), ('2025-06-15T00:00:00Z', 4)"
    )
    assert where_rows_are(conn) == {
        1: "events_p202603",
        2: "events_p202604",  # a month's range starts at its first instant, UTC
        3: "events_default",  # beyond the window
        4: "events_default",  # before it
    }


def test_a_month_already_in_default_stays_there(conn: Conn) -> None:
    conn.execute("INSERT INTO events VALUES ('2026-03-10T00:00:00Z', 1)")
    manager = at(MARCH_2026)
    manager.ensure(conn, {"events": [(2026, 3)]})  # PostgreSQL refuses: no error, no partition
    assert partitions_of(conn, "events") == {"events_default"}

    conn.execute("INSERT INTO events VALUES ('2026-03-11T00:00:00Z', 2)")
    assert where_rows_are(conn) == {1: "events_default", 2: "events_default"}
    # Known now: asked again, it is not tried again, even once DEFAULT is empty.
    conn.execute("DELETE FROM events")
    manager.ensure(conn, {"events": [(2026, 3)]})
    assert partitions_of(conn, "events") == {"events_default"}


def test_known_months_are_cached_and_a_second_manager_finds_them_made(conn: Conn) -> None:
    manager = at(MARCH_2026)
    manager.ensure(conn, {"events": [(2026, 2)]})
    conn.execute("DROP TABLE events_p202602")
    manager.ensure(conn, {"events": [(2026, 2)]})  # cached: not made again
    assert partitions_of(conn, "events") == {"events_default"}

    at(MARCH_2026).ensure(conn, {"events": [(2026, 2)]})
    at(MARCH_2026).ensure(conn, {"events": [(2026, 2)]})  # IF NOT EXISTS: a race is harmless
    assert partitions_of(conn, "events") == {"events_default", "events_p202602"}


def test_premake_makes_this_month_and_the_next_ones_of_every_table(
    conn: Conn, pg_schema: str
) -> None:
    migrate(conn, pg_schema)
    manager = PartitionManager(pg_schema, 1, 2, clock=lambda: datetime(2026, 12, 5, tzinfo=UTC))
    manager.premake(conn, months_ahead=2)
    for table in PARTITIONED_TABLES:
        assert partitions_of(conn, table) == {
            f"{table}_default",
            f"{table}_p202612",
            f"{table}_p202701",
            f"{table}_p202702",
        }

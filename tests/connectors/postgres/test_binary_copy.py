"""The sink's own binary COPY encoder, against the real PostgreSQL: what goes in comes back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.postgres import binary_copy
from connectors.postgres.rows import checked_ms, month_of_ms

TYPES = ("text", "int8", "int4", "text[]", "timestamptz", "bytea")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MS = -62_135_596_800_000  # 0001-01-01
MAX_MS = 253_402_300_799_999  # 9999-12-31 23:59:59.999


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url) as c:
        c.execute("CREATE TEMP TABLE t (a text, b int8, c int4, d text[], e timestamptz, f bytea)")
        yield c


def copy_back(
    conn: psycopg.Connection[tuple[object, ...]], rows: list[tuple[object, ...]]
) -> list[tuple[object, ...]]:
    conn.execute("TRUNCATE t")
    stream = binary_copy.encode(binary_copy.kinds_of(TYPES), rows)
    with conn.cursor() as cur, cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(stream)
    return conn.execute("SELECT a, b, c, d, e, f FROM t").fetchall()


def as_read(row: tuple[object, ...]) -> tuple[object, ...]:
    """A row as psycopg reads it back: lists for arrays, datetimes for times."""
    a, b, c, d, e, f = row
    return (
        a,
        b,
        c,
        None if d is None else list(d),  # type: ignore[call-overload]
        None if e is None else EPOCH + timedelta(milliseconds=e),  # type: ignore[arg-type]
        f,
    )


def test_edge_values_and_nulls_round_trip(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    rows: list[tuple[object, ...]] = [
        ("plain", 0, 0, ("one",), 0, b""),
        ("ünïcødé €", 2**63 - 1, 2**31 - 1, (), MAX_MS, b"\x00\xff" * 40),
        ("", -(2**63), -(2**31), ("a", "ß", "x" * 300), MIN_MS, b"\xc3\x01"),
        (None, None, None, None, None, None),
        ("tuple or list", 42, 7, ["l1", "l2"], 1_767_225_600_123, None),
    ]
    assert copy_back(conn, rows) == [as_read(r) for r in rows]


@given(
    st.lists(
        st.tuples(
            st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(-(2**31), 2**31 - 1),
            st.lists(st.text(st.characters(exclude_characters="\x00", codec="utf-8")), max_size=4),
            st.integers(MIN_MS, MAX_MS),
            st.binary(max_size=64),
        ),
        max_size=20,
    )
)
def test_random_rows_round_trip(database_url: str, rows: list[tuple[object, ...]]) -> None:
    with psycopg.connect(database_url) as c:
        c.execute("CREATE TEMP TABLE t (a text, b int8, c int4, d text[], e timestamptz, f bytea)")
        assert copy_back(c, rows) == [as_read(r) for r in rows]


def test_a_row_of_the_wrong_width_and_an_unknown_type_are_refused() -> None:
    with pytest.raises(ValueError, match="2 fields"):
        binary_copy.encode(binary_copy.kinds_of(TYPES), [("a", 1)])
    with pytest.raises(binary_copy.UnsupportedColumnTypeError, match="numeric"):
        binary_copy.kinds_of(("text", "numeric"))


@given(st.integers(MIN_MS, MAX_MS))
def test_month_of_ms_agrees_with_datetime(ms: int) -> None:
    t = EPOCH + timedelta(milliseconds=checked_ms(ms))
    assert month_of_ms(ms) == (t.year, t.month)

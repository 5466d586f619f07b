"""The real PostgreSQL server: connect, create, COPY in, read back."""

from __future__ import annotations

import psycopg


def test_copy_rows_in_and_read_them_back(database_url: str, pg_schema: str) -> None:
    rows = [(i, f"REF-{i}", 1000 + i, "EUR") for i in range(1000)]
    with psycopg.connect(database_url, options=f"-csearch_path={pg_schema}") as conn:
        conn.execute(
            "CREATE TABLE payments (id bigint PRIMARY KEY, reference text NOT NULL,"
            " amount_minor bigint NOT NULL, currency char(3) NOT NULL)"
        )
        with (
            conn.cursor() as cur,
            cur.copy("COPY payments (id, reference, amount_minor, currency) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        back = conn.execute(
            "SELECT id, reference, amount_minor, currency FROM payments ORDER BY id"
        ).fetchall()
        total = conn.execute("SELECT sum(amount_minor) FROM payments").fetchone()
    assert back == rows
    assert total == (sum(r[2] for r in rows),)

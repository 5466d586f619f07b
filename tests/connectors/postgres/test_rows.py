"""The sink's tables and rows agree with the output records' one source, their Avro schemas,
field by field: the tables' columns (read from PostgreSQL after the migrations), their types,
nullability and enum CHECKs, the row builder's rows, and what a written row reads back as."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from connectors.base import SinkRecord
from connectors.postgres.migrate import migrate
from connectors.postgres.rows import (
    DEAD_LETTER,
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_TYPES,
    EXCEPTION,
    EXCEPTION_COLUMNS,
    EXCEPTION_TYPES,
    MATCH,
    MATCH_COLUMNS,
    MATCH_TYPES,
    PreparedBatch,
    RecordColumns,
    Row,
    RowBuilder,
    datetime_to_ms,
)
from connectors.postgres.settings import SinkSettings
from connectors.postgres.writer import PostgresSink
from streams.contract import records
from streams.contract.codec import OutputCodec
from streams.contract.records import RecordLayout
from tests.streams.contract.test_records import T0, marker, plain

# table, the record's layout, its columns in the sink, the sink's COPY columns and types
TABLES = [
    ("recon_matches", records.MATCH, MATCH, MATCH_COLUMNS, MATCH_TYPES),
    ("recon_exceptions", records.EXCEPTION, EXCEPTION, EXCEPTION_COLUMNS, EXCEPTION_TYPES),
    (
        "recon_dead_letters",
        records.DEAD_LETTER,
        DEAD_LETTER,
        DEAD_LETTER_COLUMNS,
        DEAD_LETTER_TYPES,
    ),
]
IDS = [t[0] for t in TABLES]
# information_schema's udt_name of each type the sink writes (char(3) takes text).
UDT = {
    "text": {"text", "bpchar"},
    "int8": {"int8"},
    "int4": {"int4"},
    "timestamptz": {"timestamptz"},
    "text[]": {"_text"},
    "bytea": {"bytea"},
}
ENCODE = {
    "Match": "encode_match",
    "Exception": "encode_exception",
    "DeadLetter": "encode_dead_letter",
}
BATCH = {"Match": "matches", "Exception": "exceptions", "DeadLetter": "dead_letters"}


@pytest.fixture
def migrated(database_url: str, pg_schema: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        migrate(conn, pg_schema)
    with psycopg.connect(
        database_url, options=f"-csearch_path={pg_schema}", autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn


def _sink_record(layout: RecordLayout[Any], record: object, offset: int = 7) -> SinkRecord:
    data = getattr(OutputCodec(), ENCODE[layout.schema.name])(record)
    return SinkRecord("recon.out", 2, offset, T0 + 99, b"key", data)


def _only_row(batch: PreparedBatch, layout: RecordLayout[Any]) -> Row:
    rows = list(getattr(batch, BATCH[layout.schema.name]).values())
    assert len(rows) == 1, batch
    row: Row = rows[0]
    return row


@pytest.mark.parametrize(("table", "layout", "columns", "copy_columns", "types"), TABLES, ids=IDS)
def test_the_tables_columns_are_the_schemas_fields(
    migrated: psycopg.Connection[Any],
    table: str,
    layout: RecordLayout[Any],
    columns: RecordColumns,
    copy_columns: tuple[str, ...],
    types: tuple[str, ...],
) -> None:
    found = {
        r["column_name"]: r
        for r in migrated.execute(
            "SELECT column_name, udt_name, is_nullable, column_default"
            " FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s",
            [table],
        )
    }
    # Every column the sink writes exists with a type that takes what it writes...
    for column, sql_type in zip(copy_columns, types, strict=True):
        assert column in found, f"{table}.{column} is missing: a migration is needed"
        assert found[column]["udt_name"] in UDT[sql_type], column
    # ...and every other column fills itself (written_at, updated_at): none was half-added.
    for column, r in found.items():
        assert column in copy_columns or r["column_default"] is not None, column
    # Each of the record's fields is its column, nullable exactly when the field is optional.
    assert len(columns.names) == len(layout.fields)
    for f, column in zip(layout.fields, columns.names, strict=True):
        assert (found[column]["is_nullable"] == "YES") == f.optional, column
    assert columns.types == tuple(types[copy_columns.index(c)] for c in columns.names)


@pytest.mark.parametrize(("table", "layout", "columns", "copy_columns", "types"), TABLES, ids=IDS)
def test_the_tables_enum_checks_are_the_schemas_symbols(
    migrated: psycopg.Connection[Any],
    table: str,
    layout: RecordLayout[Any],
    columns: RecordColumns,
    copy_columns: tuple[str, ...],
    types: tuple[str, ...],
) -> None:
    checks = {
        r["conname"]: r["def"]
        for r in migrated.execute(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'c'",
            [table],
        )
    }
    for f, column in zip(layout.fields, columns.names, strict=True):
        if f.enum is not None:
            definition = checks[f"{table}_{column}_check"]
            assert re.findall(r"'([^']*)'", definition) == [m.value for m in f.enum], column


@pytest.mark.parametrize("nulls", [False, True], ids=["values", "nulls"])
@pytest.mark.parametrize(("table", "layout", "columns", "copy_columns", "types"), TABLES, ids=IDS)
def test_a_written_row_reads_back_as_the_record_field_by_field(
    database_url: str,
    migrated: psycopg.Connection[Any],
    pg_schema: str,
    table: str,
    layout: RecordLayout[Any],
    columns: RecordColumns,
    copy_columns: tuple[str, ...],
    types: tuple[str, ...],
    nulls: bool,
) -> None:
    record = marker(layout, nulls=nulls)
    rec = _sink_record(layout, record)
    row = _only_row(RowBuilder().prepare([rec]), layout)
    assert len(row) == len(copy_columns)
    by_column = dict(zip(copy_columns, row, strict=True))
    for f, column in zip(layout.fields, columns.names, strict=True):
        assert plain(by_column[column]) == plain(getattr(record, f.attr)), column

    sink = PostgresSink(SinkSettings(database_url=database_url, schema=pg_schema))
    sink.open()
    try:
        result = sink.write_batch([rec])
    finally:
        sink.close()
    assert result.written[table] == 1
    assert result.dead_letters == 0
    stored = migrated.execute(f"SELECT * FROM {table}").fetchall()
    assert len(stored) == 1
    for f, column in zip(layout.fields, columns.names, strict=True):
        value = stored[0][column]
        if f.kind == records.TIME and value is not None:
            value = datetime_to_ms(value)
        assert plain(value) == plain(getattr(record, f.attr)), column
    if layout is records.DEAD_LETTER:
        assert (
            stored[0]["dead_letter_id"]
            == f"worker:{record.source_topic}:{record.partition}:{record.offset}"
        )
        assert (
            stored[0]["kafka_topic"],
            stored[0]["kafka_partition"],
            stored[0]["kafka_offset"],
        ) == (
            rec.topic,
            rec.partition,
            rec.offset,
        )

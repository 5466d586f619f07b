"""Turn raw Kafka records into rows for the three tables (pure, no database).

A table's columns are its record's fields, in the order of the record's Avro schema
(:mod:`streams.contract.records`): so are a row's values, with the sink's own columns of a dead
letter around them. What each value must be for PostgreSQL follows from the field's type, and
for a few columns from their constraints (:data:`NAMED_CHECKS`).

Records are routed by their Avro fingerprint, not by topic, so a record on the "wrong" output
topic is still stored where it belongs. Anything that cannot become a valid row (not Avro,
unknown fingerprint, corrupt body, a value PostgreSQL would refuse) becomes a dead letter with
origin ``sink``, so one bad record never blocks a batch.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from connectors.base import SinkRecord, TopicPartitionKey
from connectors.postgres import binary_copy
from streams.contract import records
from streams.contract.codec import OutputCodec
from streams.contract.dead_letters import bounded_dead_letter
from streams.contract.exceptions import ContractError
from streams.contract.model import DeadLetter, ExceptionRecord, ExceptionStatus, MatchRecord
from streams.contract.registry import SchemaRegistry, default_registry

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# PostgreSQL timestamptz accepts much more, Python's datetime years 1..9999 only.
_MIN_MS: Final = -62_135_596_800_000
_MAX_MS: Final = 253_402_300_799_999
_INT32_RANGE: Final = 2**31
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}", re.ASCII)

#: A row: its values in the order of its table's columns (a tuple of ``*_COLUMNS``).
Row = tuple[Any, ...]

_SQL_TYPES: Final = {
    records.TEXT: "text",
    records.ENUM: "text",
    records.LONG: "int8",
    records.INT: "int4",
    records.TIME: "timestamptz",
    records.TEXT_ARRAY: "text[]",
    records.BYTES: "bytea",
}

# What a value must be for PostgreSQL to take it: by the field's kind, and for a few columns by
# their constraints (the migrations' char(3) and CHECKs).
_NO_CHECK: Final = 0
_NO_NUL: Final = 1
_CURRENCY: Final = 2
_TIME: Final = 3
_IDS: Final = 4
_INT32: Final = 5
_SIZE: Final = 6
_SHA256: Final = 7
_KIND_CHECKS: Final = {
    records.TEXT: _NO_NUL,
    records.TIME: _TIME,
    records.TEXT_ARRAY: _IDS,
    records.INT: _INT32,
}
NAMED_CHECKS: Final = {
    "currency": _CURRENCY,
    "ledger_currency": _CURRENCY,
    "key_size": _SIZE,
    "value_size": _SIZE,
    "key_sha256": _SHA256,
    "value_sha256": _SHA256,
}


class RecordColumns:
    """The columns of one output record, as its schema orders and types them, and its rows."""

    def __init__(self, layout: records.RecordLayout[Any], renames: Mapping[str, str]) -> None:
        self._layout = layout
        fields = layout.fields
        self.names: tuple[str, ...] = tuple(renames.get(f.name, f.name) for f in fields)
        self.types: tuple[str, ...] = tuple(_SQL_TYPES[f.kind] for f in fields)
        checks = []
        for i, f in enumerate(fields):
            check = NAMED_CHECKS.get(f.name, _KIND_CHECKS.get(f.kind, _NO_CHECK))
            if check != _NO_CHECK:
                checks.append((i, check, f.name))
        self._checks: list[tuple[int, int, str]] = checks

    def values(self, record: object) -> Row:
        """The record's values, unchecked: for records the sink built itself."""
        return self._layout.values(record)

    def checked(self, record: object) -> Row:
        """The record's values; raises :class:`InvalidRecordError` for one PostgreSQL refuses."""
        values = self._layout.values(record)
        for i, check, name in self._checks:
            value = values[i]
            if value is not None:
                _check(check, value, name)
        return values


class InvalidRecordError(ValueError):
    """A decoded record that PostgreSQL would refuse (reason INVALID_RECORD)."""


def _check(check: int, value: Any, what: str) -> None:
    if check == _NO_NUL:
        if "\x00" in value:
            raise InvalidRecordError(f"{what} contains a NUL character")
    elif check == _TIME:
        checked_ms(value)
    elif check == _IDS:
        for v in value:
            if "\x00" in v:
                raise InvalidRecordError(f"{what} contains a NUL character")
    elif check == _CURRENCY:
        if len(value) != 3 or not value.isascii() or "\x00" in value:
            raise InvalidRecordError(f"{what} {value!r} is not a 3-letter code")
    elif check == _SIZE:
        if value < 0:
            raise InvalidRecordError(f"{what} {value} is negative")
    elif check == _SHA256:
        if _SHA256_HEX.fullmatch(value) is None:
            raise InvalidRecordError(f"{what} {value[:80]!r} is not a lower-case hex SHA-256")
    elif check == _INT32 and not -_INT32_RANGE <= value < _INT32_RANGE:
        raise InvalidRecordError(f"{what} {value} is not a 32-bit integer")


MATCH: Final = RecordColumns(records.MATCH, {})
EXCEPTION: Final = RecordColumns(records.EXCEPTION, {})
# "partition" and "offset" are SQL keywords: the table names them after their source.
DEAD_LETTER: Final = RecordColumns(
    records.DEAD_LETTER, {"partition": "source_partition", "offset": "source_offset"}
)
# The sink's own columns of a dead letter: its id and origin, and where the sink read it.
_DEAD_LETTER_HEAD: Final = (("dead_letter_id", "text"), ("origin", "text"))
_DEAD_LETTER_TAIL: Final = (
    ("ingested_at", "timestamptz"),
    ("kafka_topic", "text"),
    ("kafka_partition", "int4"),
    ("kafka_offset", "int8"),
)

MATCH_COLUMNS: Final = MATCH.names
MATCH_TYPES: Final = MATCH.types
EXCEPTION_COLUMNS: Final = EXCEPTION.names
EXCEPTION_TYPES: Final = EXCEPTION.types
DEAD_LETTER_COLUMNS: Final = (
    *(c for c, _ in _DEAD_LETTER_HEAD),
    *DEAD_LETTER.names,
    *(c for c, _ in _DEAD_LETTER_TAIL),
)
DEAD_LETTER_TYPES: Final = (
    *(t for _, t in _DEAD_LETTER_HEAD),
    *DEAD_LETTER.types,
    *(t for _, t in _DEAD_LETTER_TAIL),
)

MATCH_KINDS: Final = binary_copy.kinds_of(MATCH_TYPES)
EXCEPTION_KINDS: Final = binary_copy.kinds_of(EXCEPTION_TYPES)
DEAD_LETTER_KINDS: Final = binary_copy.kinds_of(DEAD_LETTER_TYPES)

# Where the rows' keys are: the primary keys (id, partition time) and an exception's status.
_MATCH_ID: Final = MATCH_COLUMNS.index("match_id")
_MATCH_TIME: Final = MATCH_COLUMNS.index("first_event_time")
_EXCEPTION_ID: Final = EXCEPTION_COLUMNS.index("exception_id")
_EXCEPTION_TIME: Final = EXCEPTION_COLUMNS.index("raised_at")
_EXCEPTION_STATUS: Final = EXCEPTION_COLUMNS.index("status")
_DEAD_LETTER_ID: Final = DEAD_LETTER_COLUMNS.index("dead_letter_id")
_DEAD_LETTER_TIME: Final = DEAD_LETTER_COLUMNS.index("ingested_at")


def checked_ms(ms: int) -> int:
    """``ms`` if it is a time the tables accept (years 1 to 9999, like Python's datetime)."""
    if not _MIN_MS <= ms <= _MAX_MS:
        raise InvalidRecordError(f"time {ms} ms is out of the supported range")
    return ms


def month_of_ms(ms: int) -> tuple[int, int]:
    """(year, month) in UTC of a time in ms since the Unix epoch, in integer arithmetic
    (H. Hinnant's civil_from_days), so that batching rows by month builds no datetime."""
    z = ms // 86_400_000 + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month


def datetime_to_ms(dt: datetime) -> int:
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def match_row(m: MatchRecord) -> Row:
    return MATCH.checked(m)


def exception_row(e: ExceptionRecord) -> Row:
    return EXCEPTION.checked(e)


def _ingested_at(rec: SinkRecord) -> int:
    # Kafka gives -1 when the message has no timestamp; now() is the only sensible fallback.
    ms = rec.timestamp_ms
    if not 0 <= ms <= _MAX_MS:
        ms = int(time.time() * 1000)
    return ms


def _dead_letter_row(origin: str, fields: Row, dl: DeadLetter, rec: SinkRecord) -> Row:
    dead_letter_id = f"{origin}:{dl.source_topic}:{dl.partition}:{dl.offset}"
    return (
        dead_letter_id, origin, *fields, _ingested_at(rec), rec.topic, rec.partition, rec.offset
    )  # fmt: skip


def worker_dead_letter_row(dl: DeadLetter, rec: SinkRecord) -> Row:
    return _dead_letter_row("worker", DEAD_LETTER.checked(dl), dl, rec)


def sink_dead_letter_row(rec: SinkRecord, reason: str, detail: str) -> Row:
    """A record the sink itself could not store, with the reason. Bounded like the worker's dead
    letters: a prefix of the key and value, their full sizes and SHA-256, a bounded detail."""
    dl = bounded_dead_letter(
        rec.topic, rec.partition, rec.offset, rec.key, rec.value, reason, detail
    )
    return _dead_letter_row("sink", DEAD_LETTER.values(dl), dl, rec)


@dataclass(slots=True)
class PreparedBatch:
    """Rows deduplicated by primary key, ready to COPY, and the offsets to store."""

    matches: dict[tuple[str, int], Row] = field(default_factory=dict)
    exceptions: dict[tuple[str, int], Row] = field(default_factory=dict)
    dead_letters: dict[str, Row] = field(default_factory=dict)
    sink_dead_letter_reasons: list[str] = field(default_factory=list)
    offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    # Each table's rows as one binary COPY stream, built by ``seal`` on the thread that
    # prepares, so that the writer thread only sends.
    streams: dict[str, bytes] = field(default_factory=dict)

    def seal(self) -> PreparedBatch:
        """Encode every table's rows; a batch changed afterwards must be sealed again."""
        self.streams = {
            "recon_matches": binary_copy.encode(MATCH_KINDS, self.matches.values()),
            "recon_exceptions": binary_copy.encode(EXCEPTION_KINDS, self.exceptions.values()),
            "recon_dead_letters": binary_copy.encode(DEAD_LETTER_KINDS, self.dead_letters.values()),
        }
        return self

    def months(self) -> dict[str, set[tuple[int, int]]]:
        """Months (year, month) each partitioned table is about to receive rows for."""
        return {
            "recon_matches": _months(t for _, t in self.matches),
            "recon_exceptions": _months(t for _, t in self.exceptions),
            "recon_dead_letters": _months(r[_DEAD_LETTER_TIME] for r in self.dead_letters.values()),
        }


def _months(times_ms: Iterable[int]) -> set[tuple[int, int]]:
    # Rows of a batch mostly share a few days: convert each day once.
    days = {ms // 86_400_000 for ms in times_ms}
    return {month_of_ms(day * 86_400_000) for day in days}


class RowBuilder:
    """Decodes records with the output codec and builds a :class:`PreparedBatch`."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._registry = registry if registry is not None else default_registry()
        self._codec = OutputCodec(self._registry)

    def prepare(self, records: Iterable[SinkRecord]) -> PreparedBatch:
        batch = PreparedBatch()
        for rec in records:
            key = (rec.topic, rec.partition)
            if rec.offset > batch.offsets.get(key, -1):
                batch.offsets[key] = rec.offset
            try:
                self._add(batch, rec)
            except InvalidRecordError as exc:
                self.add_sink_dead_letter(batch, rec, "INVALID_RECORD", str(exc))
        return batch.seal()

    @staticmethod
    def add_sink_dead_letter(
        batch: PreparedBatch, rec: SinkRecord, reason: str, detail: str
    ) -> None:
        row = sink_dead_letter_row(rec, reason, detail)
        dead_letter_id = row[_DEAD_LETTER_ID]
        if dead_letter_id not in batch.dead_letters:
            batch.dead_letters[dead_letter_id] = row
            batch.sink_dead_letter_reasons.append(reason)

    def _add(self, batch: PreparedBatch, rec: SinkRecord) -> None:
        data = rec.value
        if data is None:
            self.add_sink_dead_letter(batch, rec, "NULL_VALUE", "tombstone on an output topic")
            return
        if len(data) < 10 or data[:2] != b"\xc3\x01":
            self.add_sink_dead_letter(
                batch, rec, "BAD_AVRO", "not Avro single-object encoding (no C3 01 header)"
            )
            return
        schema = self._registry.by_fingerprint(data[2:10])
        if schema is None:
            self.add_sink_dead_letter(
                batch, rec, "UNKNOWN_SCHEMA", f"unknown schema fingerprint {data[2:10].hex()}"
            )
            return
        try:
            if schema.name == "Match":
                m = match_row(self._codec.decode_match(data))
                batch.matches.setdefault((m[_MATCH_ID], m[_MATCH_TIME]), m)
            elif schema.name == "Exception":
                e = exception_row(self._codec.decode_exception(data))
                k = (e[_EXCEPTION_ID], e[_EXCEPTION_TIME])
                old = batch.exceptions.get(k)
                # Resolved wins over open within a batch too; otherwise the last one wins.
                resolved = ExceptionStatus.RESOLVED.value
                if (
                    old is None
                    or old[_EXCEPTION_STATUS] != resolved
                    or e[_EXCEPTION_STATUS] == resolved
                ):
                    batch.exceptions[k] = e
            elif schema.name == "DeadLetter":
                d = worker_dead_letter_row(self._codec.decode_dead_letter(data), rec)
                batch.dead_letters.setdefault(d[_DEAD_LETTER_ID], d)
            else:
                self.add_sink_dead_letter(
                    batch, rec, "UNEXPECTED_SCHEMA", f"{schema.full_name} is not an output record"
                )
        except ContractError as exc:
            self.add_sink_dead_letter(batch, rec, "BAD_AVRO", str(exc))

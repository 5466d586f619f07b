"""Turn raw Kafka records into typed rows for the three tables (pure, no database).

Records are routed by their Avro fingerprint, not by topic, so a record on the "wrong" output
topic is still stored where it belongs. Anything that cannot become a valid row (not Avro,
unknown fingerprint, corrupt body, a value PostgreSQL would refuse) becomes a dead letter with
origin ``sink``, so one bad record never blocks a batch.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, NamedTuple

from connectors.base import SinkRecord, TopicPartitionKey
from connectors.postgres import binary_copy
from streams.contract.codec import OutputCodec
from streams.contract.dead_letters import bounded_dead_letter
from streams.contract.exceptions import ContractError
from streams.contract.model import DeadLetter, ExceptionRecord, ExceptionStatus, MatchRecord
from streams.contract.registry import SchemaRegistry, default_registry

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# PostgreSQL timestamptz accepts much more, Python's datetime years 1..9999 only.
_MIN_MS: Final = -62_135_596_800_000
_MAX_MS: Final = 253_402_300_799_999
_INT32: Final = 2**31
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}", re.ASCII)

MATCH_COLUMNS: Final = (
    "match_id",
    "reference",
    "flow",
    "rule",
    "currency",
    "payment_amount_minor",
    "ledger_amount_minor",
    "difference_minor",
    "payment_event_ids",
    "ledger_event_ids",
    "first_event_time",
    "matched_at",
    "exception_id",
)
MATCH_TYPES: Final = (
    "text", "text", "text", "text", "text", "int8", "int8", "int8",
    "text[]", "text[]", "timestamptz", "timestamptz", "text",
)  # fmt: skip
EXCEPTION_COLUMNS: Final = (
    "exception_id",
    "reference",
    "flow",
    "kind",
    "status",
    "currency",
    "ledger_currency",
    "payment_amount_minor",
    "ledger_amount_minor",
    "payment_event_ids",
    "ledger_event_ids",
    "raised_at",
    "resolved_at",
    "detail",
)
EXCEPTION_TYPES: Final = (
    "text", "text", "text", "text", "text", "text", "text", "int8", "int8",
    "text[]", "text[]", "timestamptz", "timestamptz", "text",
)  # fmt: skip
DEAD_LETTER_COLUMNS: Final = (
    "dead_letter_id",
    "origin",
    "source_topic",
    "source_partition",
    "source_offset",
    "key",
    "value",
    "reason",
    "detail",
    "ingested_at",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "key_size",
    "value_size",
    "key_sha256",
    "value_sha256",
)
DEAD_LETTER_TYPES: Final = (
    "text", "text", "text", "int4", "int8", "bytea", "bytea", "text", "text",
    "timestamptz", "text", "int4", "int8", "int8", "int8", "text", "text",
)  # fmt: skip


MATCH_KINDS: Final = binary_copy.kinds_of(MATCH_TYPES)
EXCEPTION_KINDS: Final = binary_copy.kinds_of(EXCEPTION_TYPES)
DEAD_LETTER_KINDS: Final = binary_copy.kinds_of(DEAD_LETTER_TYPES)


class MatchRow(NamedTuple):
    match_id: str
    reference: str
    flow: str
    rule: str
    currency: str
    payment_amount_minor: int
    ledger_amount_minor: int
    difference_minor: int
    payment_event_ids: Sequence[str]
    ledger_event_ids: Sequence[str]
    first_event_time: int  # ms since the Unix epoch, like every time in these rows
    matched_at: int
    exception_id: str | None


class ExceptionRow(NamedTuple):
    exception_id: str
    reference: str
    flow: str
    kind: str
    status: str
    currency: str
    ledger_currency: str | None
    payment_amount_minor: int
    ledger_amount_minor: int
    payment_event_ids: Sequence[str]
    ledger_event_ids: Sequence[str]
    raised_at: int
    resolved_at: int | None
    detail: str


class DeadLetterRow(NamedTuple):
    dead_letter_id: str
    origin: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    ingested_at: int
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    key_size: int | None
    value_size: int | None
    key_sha256: str | None
    value_sha256: str | None


class InvalidRecordError(ValueError):
    """A decoded record that PostgreSQL would refuse (reason INVALID_RECORD)."""


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


def _text(value: str, what: str) -> str:
    if "\x00" in value:
        raise InvalidRecordError(f"{what} contains a NUL character")
    return value


def _currency(value: str, what: str) -> str:
    if len(value) != 3 or not value.isascii() or "\x00" in value:
        raise InvalidRecordError(f"{what} {value!r} is not a 3-letter code")
    return value


def _size(value: int | None, what: str) -> int | None:
    if value is not None and value < 0:
        raise InvalidRecordError(f"{what} {value} is negative")
    return value


def _sha256(value: str | None, what: str) -> str | None:
    if value is not None and _SHA256_HEX.fullmatch(value) is None:
        raise InvalidRecordError(f"{what} {value[:80]!r} is not a lower-case hex SHA-256")
    return value


def _ids(values: Sequence[str], what: str) -> Sequence[str]:
    for v in values:
        _text(v, what)
    return values


def match_row(m: MatchRecord) -> MatchRow:
    return MatchRow(
        _text(m.match_id, "match_id"),
        _text(m.reference, "reference"),
        m.flow.value,
        m.rule.value,
        _currency(m.currency, "currency"),
        m.payment_amount_minor,
        m.ledger_amount_minor,
        m.difference_minor,
        _ids(m.payment_event_ids, "payment_event_ids"),
        _ids(m.ledger_event_ids, "ledger_event_ids"),
        checked_ms(m.first_event_time_ms),
        checked_ms(m.matched_at_ms),
        None if m.exception_id is None else _text(m.exception_id, "exception_id"),
    )


def exception_row(e: ExceptionRecord) -> ExceptionRow:
    return ExceptionRow(
        _text(e.exception_id, "exception_id"),
        _text(e.reference, "reference"),
        e.flow.value,
        e.kind.value,
        e.status.value,
        _currency(e.currency, "currency"),
        None if e.ledger_currency is None else _currency(e.ledger_currency, "ledger_currency"),
        e.payment_amount_minor,
        e.ledger_amount_minor,
        _ids(e.payment_event_ids, "payment_event_ids"),
        _ids(e.ledger_event_ids, "ledger_event_ids"),
        checked_ms(e.raised_at_ms),
        None if e.resolved_at_ms is None else checked_ms(e.resolved_at_ms),
        _text(e.detail, "detail"),
    )


def _ingested_at(rec: SinkRecord) -> int:
    # Kafka gives -1 when the message has no timestamp; now() is the only sensible fallback.
    ms = rec.timestamp_ms
    if not 0 <= ms <= _MAX_MS:
        ms = int(time.time() * 1000)
    return ms


def worker_dead_letter_row(dl: DeadLetter, rec: SinkRecord) -> DeadLetterRow:
    if not -_INT32 <= dl.partition < _INT32:
        raise InvalidRecordError(f"partition {dl.partition} is not a 32-bit integer")
    source_topic = _text(dl.source_topic, "source_topic")
    return DeadLetterRow(
        f"worker:{source_topic}:{dl.partition}:{dl.offset}",
        "worker",
        source_topic,
        dl.partition,
        dl.offset,
        dl.key,
        dl.value,
        _text(dl.reason, "reason"),
        _text(dl.detail, "detail"),
        _ingested_at(rec),
        rec.topic,
        rec.partition,
        rec.offset,
        _size(dl.key_size, "key_size"),
        _size(dl.value_size, "value_size"),
        _sha256(dl.key_sha256, "key_sha256"),
        _sha256(dl.value_sha256, "value_sha256"),
    )


def sink_dead_letter_row(rec: SinkRecord, reason: str, detail: str) -> DeadLetterRow:
    """A record the sink itself could not store, with the reason. Bounded like the worker's dead
    letters: a prefix of the key and value, their full sizes and SHA-256, a bounded detail."""
    dl = bounded_dead_letter(
        rec.topic, rec.partition, rec.offset, rec.key, rec.value, reason, detail
    )
    return DeadLetterRow(
        f"sink:{rec.topic}:{rec.partition}:{rec.offset}",
        "sink",
        dl.source_topic,
        dl.partition,
        dl.offset,
        dl.key,
        dl.value,
        dl.reason,
        dl.detail,
        _ingested_at(rec),
        rec.topic,
        rec.partition,
        rec.offset,
        dl.key_size,
        dl.value_size,
        dl.key_sha256,
        dl.value_sha256,
    )


@dataclass(slots=True)
class PreparedBatch:
    """Rows deduplicated by primary key, ready to COPY, and the offsets to store."""

    matches: dict[tuple[str, int], MatchRow] = field(default_factory=dict)
    exceptions: dict[tuple[str, int], ExceptionRow] = field(default_factory=dict)
    dead_letters: dict[str, DeadLetterRow] = field(default_factory=dict)
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
            "recon_dead_letters": _months(r.ingested_at for r in self.dead_letters.values()),
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
        if row.dead_letter_id not in batch.dead_letters:
            batch.dead_letters[row.dead_letter_id] = row
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
                batch.matches.setdefault((m.match_id, m.first_event_time), m)
            elif schema.name == "Exception":
                e = exception_row(self._codec.decode_exception(data))
                k = (e.exception_id, e.raised_at)
                old = batch.exceptions.get(k)
                # Resolved wins over open within a batch too; otherwise the last one wins.
                resolved = ExceptionStatus.RESOLVED.value
                if old is None or old.status != resolved or e.status == resolved:
                    batch.exceptions[k] = e
            elif schema.name == "DeadLetter":
                d = worker_dead_letter_row(self._codec.decode_dead_letter(data), rec)
                batch.dead_letters.setdefault(d.dead_letter_id, d)
            else:
                self.add_sink_dead_letter(
                    batch, rec, "UNEXPECTED_SCHEMA", f"{schema.full_name} is not an output record"
                )
        except ContractError as exc:
            self.add_sink_dead_letter(batch, rec, "BAD_AVRO", str(exc))

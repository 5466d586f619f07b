"""Avro single-object encoding of the output records and of contract records in general.

Every value on ``recon.matched``, ``recon.exceptions`` and ``recon.dlq`` is
``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of its writer schema + the
Avro body, so consumers decode it without a registry. Decoders accept every known
version of the schema (fingerprint -> writer schema) and read it with the current one.
Timestamps stay exact ``int`` epoch milliseconds on both sides.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from io import BytesIO
from typing import Any, Final

import orjson
from fastavro import schemaless_reader, schemaless_writer

from streams.contract.avro_fast import FastRecord, UnsupportedSchemaError
from streams.contract.exceptions import DecodeError, EncodeError
from streams.contract.model import (
    DeadLetter,
    ExceptionKind,
    ExceptionRecord,
    ExceptionStatus,
    Flow,
    MatchRecord,
    Rule,
)
from streams.contract.registry import SchemaRegistry, SchemaVersion, default_registry

MATCH_SCHEMA: Final = "Match"
EXCEPTION_SCHEMA: Final = "Exception"
DEAD_LETTER_SCHEMA: Final = "DeadLetter"

_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1
_FLOWS: Final = {f.value: f for f in Flow}
_RULES: Final = {r.value: r for r in Rule}
_KINDS: Final = {k.value: k for k in ExceptionKind}
_STATUSES: Final = {s.value: s for s in ExceptionStatus}


def encode_single_object(schema: SchemaVersion, datum: Mapping[str, Any]) -> bytes:
    """Encode ``datum`` with ``schema`` as Avro single-object encoding.

    Also how producers (and tests) write Avro input records, e.g.
    ``encode_single_object(default_registry().current("PaymentEvent"), {...})``.
    """
    buf = BytesIO()
    buf.write(schema.header)
    try:
        schemaless_writer(buf, schema.parsed, datum)
    except Exception as exc:  # fastavro raises TypeError/ValueError/OverflowError...
        raise EncodeError(f"cannot encode {schema.name} v{schema.version}: {exc}") from exc
    return buf.getvalue()


def encode_avro(name: str, datum: Mapping[str, Any]) -> bytes:
    """Encode ``datum`` with the current version of the named contract schema."""
    return encode_single_object(default_registry().current(name), datum)


def decode_avro(
    data: bytes, registry: SchemaRegistry | None = None
) -> tuple[SchemaVersion, dict[str, Any]]:
    """Decode any single-object encoded contract record, written with any known version.

    Returns the current version of its schema and the datum read with it (timestamps as
    int ms). Raises :class:`DecodeError`. Generic and slower than the typed decoders.
    """
    reg = registry if registry is not None else default_registry()
    if data[:2] != b"\xc3\x01" or len(data) < 10:
        raise DecodeError("not Avro single-object encoding")
    writer = reg.by_fingerprint(data[2:10])
    if writer is None:
        raise DecodeError(f"unknown schema fingerprint {data[2:10].hex()}")
    current = reg.current(writer.name)
    fo = BytesIO(data)
    fo.seek(10)
    try:
        datum = schemaless_reader(fo, writer.parsed, None if writer is current else current.parsed)
    except Exception as exc:
        raise DecodeError(f"corrupt {writer.name} record: {exc!r}") from exc
    if fo.tell() != len(data):
        raise DecodeError(f"trailing bytes after {writer.name} record")
    return current, datum  # type: ignore[return-value]


def _fast(schema: SchemaVersion) -> FastRecord | None:
    try:
        return FastRecord(schema.parsed)
    except UnsupportedSchemaError:
        return None


class _Reader:
    """Fingerprint -> (writer, reader-or-None) for the versions of one schema; records written
    with the current version are read by :class:`FastRecord`, older ones by fastavro (which
    resolves them to the current version)."""

    __slots__ = ("_entries", "_fast", "_name")

    def __init__(self, registry: SchemaRegistry, name: str) -> None:
        self._name = name
        current = registry.current(name)
        self._entries: dict[bytes, tuple[Any, Any]] = {
            sv.fingerprint: (sv.parsed, None if sv is current else current.parsed)
            for sv in registry.versions(name)
        }
        fast = _fast(current)
        self._fast: dict[bytes, FastRecord] = {current.fingerprint: fast} if fast else {}

    def read(self, data: bytes) -> dict[str, Any]:
        if data[:2] != b"\xc3\x01" or len(data) < 10:
            raise DecodeError(f"not an Avro single-object encoded {self._name}")
        fingerprint = data[2:10]
        fast = self._fast.get(fingerprint)
        if fast is not None:
            try:
                return fast.decode(data, 10)
            except DecodeError as exc:
                raise DecodeError(f"corrupt {self._name} record: {exc}") from exc
        entry = self._entries.get(fingerprint)
        if entry is None:
            raise DecodeError(f"unknown {self._name} schema fingerprint {data[2:10].hex()}")
        fo = BytesIO(data)
        fo.seek(10)
        try:
            record = schemaless_reader(fo, entry[0], entry[1])
        except Exception as exc:
            raise DecodeError(f"corrupt {self._name} record: {exc!r}") from exc
        if fo.tell() != len(data):
            raise DecodeError(f"trailing bytes after {self._name} record")
        return record  # type: ignore[return-value]


class OutputCodec:
    """Encoders and decoders of the output records over one schema registry."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        reg = registry if registry is not None else default_registry()
        self._match = reg.current(MATCH_SCHEMA)
        self._exception = reg.current(EXCEPTION_SCHEMA)
        self._dead_letter = reg.current(DEAD_LETTER_SCHEMA)
        self._match_fast = _fast(self._match)
        self._exception_fast = _fast(self._exception)
        self._dead_letter_fast = _fast(self._dead_letter)
        self._match_reader = _Reader(reg, MATCH_SCHEMA)
        self._exception_reader = _Reader(reg, EXCEPTION_SCHEMA)
        self._dead_letter_reader = _Reader(reg, DEAD_LETTER_SCHEMA)

    # -- Match -------------------------------------------------------------------------

    @staticmethod
    def _encode(schema: SchemaVersion, fast: FastRecord | None, datum: dict[str, Any]) -> bytes:
        if fast is not None:
            return fast.encode(schema.header, datum)
        return encode_single_object(schema, datum)

    def encode_match(self, m: MatchRecord) -> bytes:
        return self._encode(
            self._match,
            self._match_fast,
            {
                "match_id": m.match_id,
                "reference": m.reference,
                "flow": m.flow.value,
                "rule": m.rule.value,
                "currency": m.currency,
                "payment_amount_minor": m.payment_amount_minor,
                "ledger_amount_minor": m.ledger_amount_minor,
                "difference_minor": m.difference_minor,
                "payment_event_ids": m.payment_event_ids,
                "ledger_event_ids": m.ledger_event_ids,
                "first_event_time": m.first_event_time_ms,
                "matched_at": m.matched_at_ms,
                "exception_id": m.exception_id,
            },
        )

    def decode_match(self, data: bytes) -> MatchRecord:
        d = self._match_reader.read(data)
        try:
            return MatchRecord(
                d["match_id"],
                d["reference"],
                _FLOWS[d["flow"]],
                _RULES[d["rule"]],
                d["currency"],
                d["payment_amount_minor"],
                d["ledger_amount_minor"],
                d["difference_minor"],
                tuple(d["payment_event_ids"]),
                tuple(d["ledger_event_ids"]),
                d["first_event_time"],
                d["matched_at"],
                d["exception_id"],
            )
        except KeyError as exc:
            raise DecodeError(f"Match record lacks or has unknown {exc}") from exc

    # -- Exception ---------------------------------------------------------------------

    def encode_exception(self, e: ExceptionRecord) -> bytes:
        return self._encode(
            self._exception,
            self._exception_fast,
            {
                "exception_id": e.exception_id,
                "reference": e.reference,
                "flow": e.flow.value,
                "kind": e.kind.value,
                "status": e.status.value,
                "currency": e.currency,
                "ledger_currency": e.ledger_currency,
                "payment_amount_minor": e.payment_amount_minor,
                "ledger_amount_minor": e.ledger_amount_minor,
                "payment_event_ids": e.payment_event_ids,
                "ledger_event_ids": e.ledger_event_ids,
                "raised_at": e.raised_at_ms,
                "resolved_at": e.resolved_at_ms,
                "detail": e.detail,
            },
        )

    def decode_exception(self, data: bytes) -> ExceptionRecord:
        d = self._exception_reader.read(data)
        try:
            return ExceptionRecord(
                d["exception_id"],
                d["reference"],
                _FLOWS[d["flow"]],
                _KINDS[d["kind"]],
                _STATUSES[d["status"]],
                d["currency"],
                d["ledger_currency"],
                d["payment_amount_minor"],
                d["ledger_amount_minor"],
                tuple(d["payment_event_ids"]),
                tuple(d["ledger_event_ids"]),
                d["raised_at"],
                d["resolved_at"],
                d["detail"],
            )
        except KeyError as exc:
            raise DecodeError(f"Exception record lacks or has unknown {exc}") from exc

    # -- DeadLetter --------------------------------------------------------------------

    def encode_dead_letter(self, dl: DeadLetter) -> bytes:
        if type(dl.partition) is not int or not _INT_MIN <= dl.partition <= _INT_MAX:
            raise EncodeError(f"DeadLetter partition {dl.partition!r} is not a 32-bit int")
        return self._encode(
            self._dead_letter,
            self._dead_letter_fast,
            {
                "source_topic": dl.source_topic,
                "partition": dl.partition,
                "offset": dl.offset,
                "key": dl.key,
                "value": dl.value,
                "reason": dl.reason,
                "detail": dl.detail,
                "key_size": dl.key_size,
                "value_size": dl.value_size,
                "key_sha256": dl.key_sha256,
                "value_sha256": dl.value_sha256,
            },
        )

    def decode_dead_letter(self, data: bytes) -> DeadLetter:
        d = self._dead_letter_reader.read(data)
        try:
            return DeadLetter(
                d["source_topic"],
                d["partition"],
                d["offset"],
                d["key"],
                d["value"],
                d["reason"],
                d["detail"],
                d["key_size"],
                d["value_size"],
                d["key_sha256"],
                d["value_sha256"],
            )
        except KeyError as exc:
            raise DecodeError(f"DeadLetter record lacks {exc}") from exc


_default_codec: OutputCodec | None = None


def _codec() -> OutputCodec:
    global _default_codec  # noqa: PLW0603
    if _default_codec is None:
        _default_codec = OutputCodec()
    return _default_codec


def encode_match(record: MatchRecord) -> bytes:
    return _codec().encode_match(record)


def decode_match(data: bytes) -> MatchRecord:
    return _codec().decode_match(data)


def encode_exception(record: ExceptionRecord) -> bytes:
    return _codec().encode_exception(record)


def decode_exception(data: bytes) -> ExceptionRecord:
    return _codec().decode_exception(data)


def encode_dead_letter(record: DeadLetter) -> bytes:
    return _codec().encode_dead_letter(record)


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _codec().decode_dead_letter(data)


def _json_default(obj: object) -> object:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError


def to_json(record: MatchRecord | ExceptionRecord | DeadLetter) -> bytes:
    """A JSON rendering for humans and debugging (bytes fields as base64). Not a wire format."""
    return orjson.dumps(record, default=_json_default, option=orjson.OPT_SORT_KEYS)

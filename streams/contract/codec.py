"""Avro single-object encoding of the output records and of contract records in general.

Every value on ``recon.matched``, ``recon.exceptions`` and ``recon.dlq`` is
``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of its writer schema + the
Avro body, so consumers decode it without a registry. Decoders accept every known
version of the schema (fingerprint -> writer schema) and read it with the current one.
Timestamps stay exact ``int`` epoch milliseconds on both sides.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, Final, Generic, TypeVar

import orjson
from fastavro import schemaless_reader, schemaless_writer

from streams.contract.avro_fast import FastRecord, UnsupportedSchemaError
from streams.contract.exceptions import DecodeError, EncodeError
from streams.contract.model import DeadLetter, ExceptionRecord, MatchRecord
from streams.contract.records import (
    DEAD_LETTER_SCHEMA,
    EXCEPTION_SCHEMA,
    MATCH_SCHEMA,
    RecordLayout,
)
from streams.contract.registry import SchemaRegistry, SchemaVersion, default_registry

_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1
R = TypeVar("R")


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
    resolves them to the current version). Gives the current version's field values in order."""

    __slots__ = ("_entries", "_fast", "_name", "_names")

    def __init__(self, registry: SchemaRegistry, name: str) -> None:
        self._name = name
        current = registry.current(name)
        self._names = [str(f["name"]) for f in current.parsed["fields"]]
        self._entries: dict[bytes, tuple[Any, Any]] = {
            sv.fingerprint: (sv.parsed, None if sv is current else current.parsed)
            for sv in registry.versions(name)
        }
        fast = _fast(current)
        self._fast: dict[bytes, FastRecord] = {current.fingerprint: fast} if fast else {}

    def read(self, data: bytes) -> list[Any]:
        if data[:2] != b"\xc3\x01" or len(data) < 10:
            raise DecodeError(f"not an Avro single-object encoded {self._name}")
        fingerprint = data[2:10]
        fast = self._fast.get(fingerprint)
        if fast is not None:
            try:
                return fast.decode_values(data, 10)
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
        assert isinstance(record, dict)
        return [record[name] for name in self._names]


class _Output(Generic[R]):
    """The encoder and decoder of one output record: its fields by position, as its current
    schema version lays them out (:class:`RecordLayout`)."""

    __slots__ = ("_fast", "_names", "_reader", "_schema", "layout")

    def __init__(self, registry: SchemaRegistry, name: str, model_class: Callable[..., R]) -> None:
        self._schema = registry.current(name)
        self.layout = RecordLayout(self._schema, model_class)
        self._names = [f.name for f in self.layout.schema_fields]
        self._fast = _fast(self._schema)
        self._reader = _Reader(registry, name)

    def encode(self, record: R) -> bytes:
        values = self.layout.schema_values(record)
        if self._fast is not None:
            return self._fast.encode_values(self._schema.header, values)
        return encode_single_object(self._schema, dict(zip(self._names, values, strict=True)))

    def decode(self, data: bytes) -> R:
        values = self._reader.read(data)
        try:
            return self.layout.from_schema_values(values)
        except KeyError as exc:
            raise DecodeError(f"{self._schema.name} record lacks or has unknown {exc}") from exc


class OutputCodec:
    """Encoders and decoders of the output records over one schema registry."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        reg = registry if registry is not None else default_registry()
        self._match = _Output(reg, MATCH_SCHEMA, MatchRecord)
        self._exception = _Output(reg, EXCEPTION_SCHEMA, ExceptionRecord)
        self._dead_letter = _Output(reg, DEAD_LETTER_SCHEMA, DeadLetter)

    def encode_match(self, m: MatchRecord) -> bytes:
        return self._match.encode(m)

    def decode_match(self, data: bytes) -> MatchRecord:
        return self._match.decode(data)

    def encode_exception(self, e: ExceptionRecord) -> bytes:
        return self._exception.encode(e)

    def decode_exception(self, data: bytes) -> ExceptionRecord:
        return self._exception.decode(data)

    def encode_dead_letter(self, dl: DeadLetter) -> bytes:
        if type(dl.partition) is not int or not _INT_MIN <= dl.partition <= _INT_MAX:
            raise EncodeError(f"DeadLetter partition {dl.partition!r} is not a 32-bit int")
        return self._dead_letter.encode(dl)

    def decode_dead_letter(self, data: bytes) -> DeadLetter:
        return self._dead_letter.decode(data)


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

"""Decoding and validation of the input topics (``payments`` and ``ledger``).

One public entry point, :meth:`InputDecoder.decode` (or :func:`decode_input` for the
default decoder), takes one Kafka record and returns a :data:`Decoded`: an
:class:`~streams.contract.model.InputEvent`, a :class:`~streams.contract.model.Heartbeat`
or a :class:`Rejection` (reason code + human detail). It never raises for bad input.

Value formats, detected per record:

* ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + body: Avro single-object
  encoding, any known version of ``PaymentEvent`` / ``LedgerEvent`` / ``Heartbeat``.
* ``00`` + 4-byte big-endian schema id + body: Confluent wire format, only when a
  ``confluent_kafka.schema_registry.SchemaRegistryClient`` is given (else UNKNOWN_SCHEMA).
* anything else: JSON (an object, parsed with orjson).

This is the hot path: no pydantic, no jsonschema, direct dict access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from hashlib import blake2b
from io import BytesIO
from typing import Any, Final

import orjson
import pycountry
from fastavro import schemaless_reader

from streams.contract.dead_letters import bounded_dead_letter
from streams.contract.exceptions import SchemaRegistryUnavailableError
from streams.contract.model import DeadLetter, Flow, Heartbeat, InputEvent, Side
from streams.contract.registry import (
    SchemaRegistry,
    SchemaVersion,
    default_registry,
    parse_schema_json,
)


class RejectReason(StrEnum):
    """Machine reason code of a dead letter (``DeadLetter.reason``): every reason there is, the
    decoder's, the worker's and the sink's. README's table lists exactly these (a test checks)."""

    BAD_JSON = "BAD_JSON"  # not parseable JSON, not an object, empty value, unknown format
    BAD_AVRO = "BAD_AVRO"  # Avro body does not decode with its writer schema
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"  # fingerprint / schema id not known for this input
    MISSING_FIELD = "MISSING_FIELD"  # required field absent or null
    BAD_TYPE = "BAD_TYPE"  # field has the wrong JSON type
    BAD_VALUE = "BAD_VALUE"  # kind/direction not allowed, bad event_id (length, NUL, surrogate)
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"  # not an ISO 4217 alpha-3 code
    BAD_AMOUNT = "BAD_AMOUNT"  # amount_minor <= 0 or > 2**63-1
    BAD_REFERENCE = "BAD_REFERENCE"  # reference empty, longer than 128 characters, NUL, surrogate
    BAD_EVENT_TIME = "BAD_EVENT_TIME"  # unparseable, naive, or out of range event time
    KEY_MISMATCH = (
        "KEY_MISMATCH"  # record key missing or not the UTF-8 reference; or wrong partition
    )
    # The worker's own: the engine failed on the record, or an output could not be sent.
    PROCESSING_ERROR = "PROCESSING_ERROR"
    # The worker's own: a record from a topic it does not read.
    UNKNOWN_TOPIC = "UNKNOWN_TOPIC"
    # The sink's own (origin 'sink'): PostgreSQL refused an output record on its own.
    SINK_REJECTED = "SINK_REJECTED"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input record was rejected; becomes a :class:`DeadLetter`."""

    reason: RejectReason
    detail: str


Decoded = InputEvent | Heartbeat | Rejection

#: ISO 4217 alpha-3 codes known to pycountry.
CURRENCIES: Final[frozenset[str]] = frozenset(c.alpha_3 for c in pycountry.currencies)

MAX_ID_LEN: Final = 128
MAX_REFERENCE_LEN: Final = 128
MAX_AMOUNT: Final = 2**63 - 1
#: The least float beyond MAX_AMOUNT. A JSON number past the 64-bit range (orjson reads it as
#: a float) is out of range when its magnitude is at least this. Compared as floats on both
#: sides: mypyc compares a float with an int as floats, where MAX_AMOUNT rounds up to 2**63,
#: so ``abs(x) > MAX_AMOUNT`` was False for x = -2**63 - 1 once compiled and True in Python.
_FLOAT_PAST_AMOUNT: Final = 9223372036854775808.0
#: Accepted event times: 1970-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z.
MIN_EVENT_TIME_MS: Final = 0
MAX_EVENT_TIME_MS: Final = 253_402_300_799_999
_FLOAT_MAX_EVENT_TIME_MS: Final = 253_402_300_799_999.0  # exact: below 2**53

_PAYMENT_KINDS: Final = {"payment": Flow.PAYMENT, "refund": Flow.REFUND}
_LEDGER_DIRECTIONS: Final = {"credit": Flow.PAYMENT, "debit": Flow.REFUND}
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_fromisoformat: Final = datetime.fromisoformat
_RFC3339: Final = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)",
    re.ASCII,
)
_WHITESPACE: Final = b" \t\r\n"
_INPUT_SCHEMAS: Final = {
    Side.PAYMENT: "PaymentEvent",
    Side.LEDGER: "LedgerEvent",
}
_HEARTBEAT: Final = "Heartbeat"
# side -> (side value, category field, optional text field, category -> flow)
_SIDE_FIELDS: Final = {
    Side.PAYMENT: ("payment", "kind", "source", _PAYMENT_KINDS),
    Side.LEDGER: ("ledger", "direction", "account", _LEDGER_DIRECTIONS),
}


def parse_event_time(value: object) -> int | Rejection:
    """An event time as exact integer epoch milliseconds, or a rejection.

    Accepts an ``int`` (epoch ms) or an RFC 3339 string with ``Z`` or an explicit
    ``+hh:mm``/``-hh:mm`` offset; sub-millisecond digits are truncated.
    """
    if type(value) is int:
        ms = value
    elif type(value) is str:
        if _RFC3339.fullmatch(value) is None:
            return Rejection(
                RejectReason.BAD_EVENT_TIME,
                f"event_time {value[:64]!r} is not RFC 3339 with an offset or Z",
            )
        try:  # the regex checked the RFC 3339 syntax; fromisoformat checks the ranges
            dt = _fromisoformat(value.upper())  # 3.11 fromisoformat wants "T" and "Z"
        except ValueError as exc:
            return Rejection(RejectReason.BAD_EVENT_TIME, f"event_time {value!r}: {exc}")
        off = dt.utcoffset()
        if off is None:  # cannot happen: the regex requires Z or an offset
            return Rejection(RejectReason.BAD_EVENT_TIME, f"event_time {value!r} is naive")
        secs = (dt.toordinal() - _EPOCH_ORDINAL) * 86400 + dt.hour * 3600
        secs += dt.minute * 60 + dt.second - off.days * 86400 - off.seconds
        ms = secs * 1000 + dt.microsecond // 1000  # fromisoformat truncates to microseconds
    elif value is None:
        return Rejection(RejectReason.MISSING_FIELD, "missing required field 'event_time'")
    elif type(value) is float and abs(value) > _FLOAT_MAX_EVENT_TIME_MS:
        # A JSON number past the range of event times, e.g. an integer beyond 64 bits (which
        # orjson reads as a float): out of range, as amounts are (BAD_AMOUNT).
        return Rejection(RejectReason.BAD_EVENT_TIME, f"event_time {value!r} is out of range")
    else:
        return Rejection(
            RejectReason.BAD_TYPE,
            f"event_time must be an RFC 3339 string or integer epoch ms, "
            f"not {type(value).__name__}",
        )
    if not MIN_EVENT_TIME_MS <= ms <= MAX_EVENT_TIME_MS:
        return Rejection(RejectReason.BAD_EVENT_TIME, f"event_time {ms} ms is out of range")
    return ms


def unstorable_text(text: str) -> str | None:
    """Why PostgreSQL's UTF-8 ``text`` cannot hold ``text`` (a NUL, or a lone surrogate, which
    has no UTF-8 encoding), or None when it can. Those are the only two things it refuses."""
    if "\x00" in text:
        return "contains a NUL character (U+0000)"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            return f"contains a lone surrogate (U+{ord(text[exc.start]):04X}), which is not UTF-8"
    return None


_NOT_A_HEARTBEAT: Final = (
    "missing required field 'event_id' (a heartbeat has event_time and no other field; "
    "this record has others, so it is read as an event)"
)


def _missing(name: str) -> Rejection:
    return Rejection(RejectReason.MISSING_FIELD, f"missing required field {name!r}")


def _bad_type(name: str, expected: str, value: object) -> Rejection:
    return Rejection(
        RejectReason.BAD_TYPE, f"{name} must be {expected}, not {type(value).__name__}"
    )


def _heartbeat(record: dict[str, Any], side: Side, offset: int) -> Heartbeat | Rejection:
    t = parse_event_time(record.get("event_time"))
    if type(t) is int:
        return Heartbeat(side, t, offset)
    return t  # type: ignore[return-value]


def validate_record(
    record: dict[str, Any], side: Side, key: bytes | None, offset: int
) -> InputEvent | Heartbeat | Rejection:
    """Validate one decoded record (from JSON or Avro) of the given input side.

    A record whose only field is ``event_time`` is a heartbeat (any key is accepted).
    Unknown extra fields of an event are ignored (and not part of the content hash).
    """
    if len(record) == 1 and "event_time" in record:
        return _heartbeat(record, side, offset)
    get = record.get

    event_id = get("event_id")
    if type(event_id) is not str:
        if event_id is not None:
            return _bad_type("event_id", "a string", event_id)
        if "event_time" in record:
            return Rejection(RejectReason.MISSING_FIELD, _NOT_A_HEARTBEAT)
        return _missing("event_id")
    if not event_id or len(event_id) > MAX_ID_LEN:
        return Rejection(RejectReason.BAD_VALUE, f"event_id must have 1 to {MAX_ID_LEN} characters")
    problem = unstorable_text(event_id)
    if problem is not None:
        return Rejection(
            RejectReason.BAD_VALUE, f"event_id {event_id!r} {problem}: not storable as text"
        )

    reference = get("reference")
    if type(reference) is not str:
        if reference is None:
            return _missing("reference")
        return _bad_type("reference", "a string", reference)
    if not reference or len(reference) > MAX_REFERENCE_LEN:
        return Rejection(
            RejectReason.BAD_REFERENCE,
            f"reference must have 1 to {MAX_REFERENCE_LEN} characters, has {len(reference)}",
        )
    problem = unstorable_text(reference)
    if problem is not None:
        return Rejection(
            RejectReason.BAD_REFERENCE, f"reference {reference!r} {problem}: not storable as text"
        )

    amount = get("amount_minor")
    if type(amount) is not int:
        if amount is None:
            return _missing("amount_minor")
        if type(amount) is float and abs(amount) >= _FLOAT_PAST_AMOUNT:  # a huge JSON number
            return Rejection(RejectReason.BAD_AMOUNT, "amount_minor is out of range")
        return _bad_type("amount_minor", "an integer", amount)
    if amount <= 0 or amount > MAX_AMOUNT:
        return Rejection(
            RejectReason.BAD_AMOUNT, f"amount_minor must be in 1..2**63-1, got {amount}"
        )

    currency = get("currency")
    if type(currency) is not str:
        return (
            _missing("currency")
            if currency is None
            else _bad_type("currency", "a string", currency)
        )
    if currency not in CURRENCIES:
        return Rejection(
            RejectReason.UNKNOWN_CURRENCY, f"currency {currency[:16]!r} is not an ISO 4217 code"
        )

    event_time = get("event_time")
    if type(event_time) is not int or not MIN_EVENT_TIME_MS <= event_time <= MAX_EVENT_TIME_MS:
        event_time = parse_event_time(event_time)
        if type(event_time) is not int:
            return event_time  # type: ignore[return-value]

    side_value, cat_name, extra_name, allowed = _SIDE_FIELDS[side]
    category = get(cat_name)
    if type(category) is not str:
        return _missing(cat_name) if category is None else _bad_type(cat_name, "a string", category)
    flow = allowed.get(category)
    if flow is None:
        return Rejection(
            RejectReason.BAD_VALUE,
            f"{cat_name} must be one of {sorted(allowed)}, got {category[:32]!r}",
        )

    extra = get(extra_name)
    if extra is not None and type(extra) is not str:
        return _bad_type(extra_name, "a string or null", extra)
    metadata = get("metadata")
    if metadata is not None:
        if type(metadata) is not dict:
            return _bad_type("metadata", "an object of strings or null", metadata)
        for mv in metadata.values():
            if type(mv) is not str:
                return _bad_type("metadata values", "strings", mv)

    if key is None:
        return Rejection(RejectReason.KEY_MISMATCH, "record has no key; expected the reference")
    if key != reference.encode():
        return Rejection(
            RejectReason.KEY_MISMATCH,
            f"record key {key[:64]!r} is not the UTF-8 reference {reference!r}",
        )

    canonical = orjson.dumps(
        {
            "side": side_value,
            "event_id": event_id,
            "reference": reference,
            "amount_minor": amount,
            "currency": currency,
            "event_time_ms": event_time,
            cat_name: category,
            extra_name: extra,
            "metadata": metadata,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return InputEvent(
        side,
        event_id,
        reference,
        amount,
        currency,
        event_time,
        flow,
        blake2b(canonical, digest_size=16).digest(),
        offset,
    )


@dataclass(frozen=True, slots=True)
class _ConfluentEntry:
    writer: Any  # parsed writer schema
    reader: SchemaVersion  # current contract schema to read with
    same: bool  # writer is the current version: read without resolution


class InputDecoder:
    """Decodes input records; holds the schema registry and Confluent schema-id cache."""

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        schema_registry_client: Any | None = None,
    ) -> None:
        """``schema_registry_client``: an optional ``confluent_kafka`` ``SchemaRegistryClient``."""
        self._registry = registry if registry is not None else default_registry()
        self._client = schema_registry_client
        self._confluent: dict[int, _ConfluentEntry | Rejection] = {}
        # fingerprint -> (writer schema, reader schema or None when current, side or None)
        # where side None means a heartbeat schema, accepted on both inputs
        self._by_fp: dict[bytes, tuple[Any, Any, Side | None]] = {}
        for sv in self._registry:
            if sv.name == _HEARTBEAT:
                side: Side | None = None
            elif sv.name == _INPUT_SCHEMAS[Side.PAYMENT]:
                side = Side.PAYMENT
            elif sv.name == _INPUT_SCHEMAS[Side.LEDGER]:
                side = Side.LEDGER
            else:
                continue
            current = self._registry.current(sv.name)
            reader = None if current is sv else current.parsed
            self._by_fp[sv.fingerprint] = (sv.parsed, reader, side)

    def decode(self, side: Side, key: bytes | None, value: bytes | None, offset: int) -> Decoded:
        """Decode and validate one record of input ``side``. Never raises for bad input; raises
        SchemaRegistryUnavailableError when the registry cannot say what the record is."""
        try:
            return self._decode(side, key, value, offset)
        except SchemaRegistryUnavailableError:
            raise
        except Exception as exc:  # defensive: no other error escapes the contract boundary
            return Rejection(RejectReason.BAD_VALUE, f"unexpected decoding error: {exc!r}")

    def _decode(self, side: Side, key: bytes | None, value: bytes | None, offset: int) -> Decoded:
        if not value:
            return Rejection(RejectReason.BAD_JSON, "empty record value")
        first = value[0]
        if first == 0x7B:  # '{'
            return self._decode_json(side, key, value, offset)
        if first == 0xC3 and value[1:2] == b"\x01":
            return self._decode_single_object(side, key, value, offset)
        if first == 0x00:
            return self._decode_confluent(side, key, value, offset)
        if value.lstrip(_WHITESPACE)[:1] == b"{":
            return self._decode_json(side, key, value, offset)
        return Rejection(
            RejectReason.BAD_JSON,
            f"value is neither a JSON object nor Avro (starts with {bytes(value[:4])!r})",
        )

    @staticmethod
    def _decode_json(side: Side, key: bytes | None, value: bytes, offset: int) -> Decoded:
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return Rejection(RejectReason.BAD_JSON, f"invalid JSON: {exc}")
        if type(record) is not dict:
            return Rejection(RejectReason.BAD_JSON, "JSON value is not an object")
        return validate_record(record, side, key, offset)

    def _decode_single_object(
        self, side: Side, key: bytes | None, value: bytes, offset: int
    ) -> Decoded:
        entry = self._by_fp.get(value[2:10])
        if entry is None:
            return Rejection(
                RejectReason.UNKNOWN_SCHEMA,
                f"unknown Avro schema fingerprint {value[2:10].hex()}",
            )
        writer, reader, schema_side = entry
        if schema_side is not None and schema_side is not side:
            return Rejection(
                RejectReason.UNKNOWN_SCHEMA,
                f"{_INPUT_SCHEMAS[schema_side]} records are not accepted on the {side.value} input",
            )
        return self._read_avro(
            side,
            key,
            value,
            start=10,
            writer=writer,
            reader=reader,
            offset=offset,
            heartbeat=schema_side is None,
        )

    @staticmethod
    def _read_avro(
        side: Side,
        key: bytes | None,
        value: bytes,
        *,
        start: int,
        writer: Any,
        reader: Any,
        offset: int,
        heartbeat: bool,
    ) -> Decoded:
        fo = BytesIO(value)
        fo.seek(start)
        try:
            record = schemaless_reader(fo, writer, reader)
        except Exception as exc:  # fastavro raises many types for corrupt data
            return Rejection(RejectReason.BAD_AVRO, f"Avro body does not decode: {exc!r}")
        if fo.tell() != len(value):
            return Rejection(
                RejectReason.BAD_AVRO, f"{len(value) - fo.tell()} trailing bytes after Avro body"
            )
        if type(record) is not dict:
            return Rejection(RejectReason.BAD_AVRO, "Avro value is not a record")
        if heartbeat:
            return _heartbeat(record, side, offset)
        return validate_record(record, side, key, offset)

    def _decode_confluent(
        self, side: Side, key: bytes | None, value: bytes, offset: int
    ) -> Decoded:
        if self._client is None:
            return Rejection(
                RejectReason.UNKNOWN_SCHEMA,
                "Confluent wire format but no schema registry client is configured",
            )
        if len(value) < 5:
            return Rejection(RejectReason.BAD_AVRO, "Confluent wire format header is truncated")
        schema_id = int.from_bytes(value[1:5], "big")
        entry = self._confluent.get(schema_id)
        if entry is None:
            entry = self._lookup_confluent(schema_id)
        if isinstance(entry, Rejection):
            return entry
        expected = {_HEARTBEAT, _INPUT_SCHEMAS[side]}
        if entry.reader.name not in expected:
            return Rejection(
                RejectReason.UNKNOWN_SCHEMA,
                f"schema id {schema_id} ({entry.reader.full_name}) is not accepted "
                f"on the {side.value} input",
            )
        reader = None if entry.same else entry.reader.parsed
        return self._read_avro(
            side,
            key,
            value,
            start=5,
            writer=entry.writer,
            reader=reader,
            offset=offset,
            heartbeat=entry.reader.name == _HEARTBEAT,
        )

    def _lookup_confluent(self, schema_id: int) -> _ConfluentEntry | Rejection:
        try:
            schema = self._client.get_schema(schema_id)  # type: ignore[union-attr]
        except Exception as exc:
            status = getattr(exc, "http_status_code", None)
            if status != 404:
                # Down, overloaded, unreachable, or refusing our credentials: none of it says
                # anything about the record, so it is retried, never dead-lettered.
                raise SchemaRegistryUnavailableError(
                    f"schema id {schema_id}: the schema registry did not answer: {exc}"
                ) from exc
            # The id does not exist: the record cannot be read; remember it.
            rejection = Rejection(
                RejectReason.UNKNOWN_SCHEMA, f"schema id {schema_id} lookup failed: {exc}"
            )
            self._confluent[schema_id] = rejection
            return rejection
        entry: _ConfluentEntry | Rejection
        try:
            if getattr(schema, "schema_type", "AVRO") not in ("AVRO", None):
                raise ValueError(f"schema type {schema.schema_type} is not AVRO")
            writer, fp, full_name = parse_schema_json(orjson.loads(schema.schema_str))
            known = self._registry.by_fingerprint(fp)
            current = self._registry.by_full_name(full_name)
            if current is None:
                entry = Rejection(
                    RejectReason.UNKNOWN_SCHEMA,
                    f"schema id {schema_id} is {full_name or 'unnamed'!r}, not a contract schema",
                )
            else:
                if known is not None:
                    writer = known.parsed
                entry = _ConfluentEntry(writer, current, known is current)
        except Exception as exc:
            entry = Rejection(
                RejectReason.UNKNOWN_SCHEMA, f"schema id {schema_id} is not usable: {exc}"
            )
        self._confluent[schema_id] = entry
        return entry


_default_decoder: InputDecoder | None = None


def decode_input(side: Side, key: bytes | None, value: bytes | None, offset: int) -> Decoded:
    """Decode one input record with the default decoder (no Confluent registry)."""
    global _default_decoder  # noqa: PLW0603
    decoder = _default_decoder
    if decoder is None:
        decoder = _default_decoder = InputDecoder()
    return decoder.decode(side, key, value, offset)


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    rejection: Rejection,
) -> DeadLetter:
    """The bounded :class:`DeadLetter` recording a rejected input record (see
    :func:`~streams.contract.dead_letters.bounded_dead_letter`)."""
    return bounded_dead_letter(
        topic, partition, offset, key, value, rejection.reason.value, rejection.detail
    )

"""Table-driven validation tests: every reason code, good JSON and Avro records."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from streams.contract import (
    InputDecoder,
    Rejection,
    RejectReason,
    dead_letter,
    decode_input,
    default_registry,
    encode_avro,
    parse_event_time,
    validate_record,
)
from streams.contract.decode import unstorable_text
from streams.contract.model import DeadLetter, Flow, Heartbeat, InputEvent, Side

PAYMENT: dict[str, Any] = {
    "event_id": "evt-1",
    "reference": "REF-1",
    "amount_minor": 1234,
    "currency": "EUR",
    "event_time": "2026-03-01T10:00:00+01:00",
    "kind": "payment",
}
LEDGER: dict[str, Any] = {
    "event_id": "led-1",
    "reference": "REF-1",
    "amount_minor": 1234,
    "currency": "EUR",
    "event_time": 1772355600000,
    "direction": "credit",
}
KEY = b"REF-1"
# 2026-03-01T09:00:00Z, computed by hand: 20513 days * 86400 s + 9 h, in ms.
T0 = (20513 * 86400 + 9 * 3600) * 1000
assert T0 == 1772355600000


def _json(base: dict[str, Any], **changes: Any) -> bytes:
    record = {**base, **changes}
    return orjson.dumps({k: v for k, v in record.items() if v is not _DROP})


_DROP = object()
PAYMENT_FP = default_registry().current("PaymentEvent").fingerprint


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2026-03-01T10:00:00+01:00", T0),
        ("2026-03-01T09:00:00Z", T0),
        ("2026-03-01t09:00:00z", T0),
        ("2026-03-01 09:00:00Z", T0),
        ("2026-02-28T23:30:00-09:30", T0),
        ("2026-03-01T09:00:00.123Z", T0 + 123),
        ("2026-03-01T09:00:00.5Z", T0 + 500),
        ("2026-03-01T09:00:00.123456789Z", T0 + 123),  # sub-ms truncated
        ("2026-03-01T09:00:00.9999+00:00", T0 + 999),
        ("2026-03-01T09:00:00.9999999Z", T0 + 999),  # truncated, not rounded
        ("2026-03-01T09:00:00-00:00", T0),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        # 1709251200 is 2024-03-01T00:00:00Z (19783 days); leap day noon is 12 h earlier.
        ("2024-02-29T12:00:00Z", (19782 * 86400 + 12 * 3600) * 1000),
        ("9999-12-31T23:59:59.999Z", 253402300799999),
        (T0, T0),
        (0, 0),
    ],
)
def test_event_time_conversions(text: object, expected_ms: int) -> None:
    assert parse_event_time(text) == expected_ms


@pytest.mark.parametrize(
    "bad",
    [
        "2026-03-01T10:00:00",  # naive
        "2026-03-01T10:00:00.123",  # naive with fraction
        "2026-03-01",  # date only
        "2026-03-01T10:00Z",  # no seconds
        "2026-03-01T10:00:00+0100",  # offset without colon
        "2026-03-01T10:00:00+01",  # offset without minutes
        "2026-02-29T00:00:00Z",  # not a leap year
        "2026-13-01T00:00:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T10:60:00Z",
        "2026-03-01T10:00:60Z",  # leap second: not supported
        "2026-03-01T10:00:00+24:00",
        "2026-03-01T10:00:00.Z",
        "1969-12-31T23:59:59Z",  # before the epoch
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",  # after 9999
        "\u0662\u0660\u0662\u0666-03-01T10:00:00Z",  # non-ASCII digits
        " 2026-03-01T10:00:00Z",
        "",
        -1,
        253402300800000,
    ],
)
def test_bad_event_times(bad: object) -> None:
    result = parse_event_time(bad)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.BAD_EVENT_TIME


LONG = "x" * 129
REJECTIONS: list[tuple[str, Side, bytes | None, bytes | None, RejectReason]] = [
    ("empty value", Side.PAYMENT, KEY, b"", RejectReason.BAD_JSON),
    ("tombstone", Side.PAYMENT, KEY, None, RejectReason.BAD_JSON),
    ("truncated json", Side.PAYMENT, KEY, b'{"event_id": ', RejectReason.BAD_JSON),
    ("trailing garbage", Side.PAYMENT, KEY, b'  {"a": 1} x', RejectReason.BAD_JSON),
    ("json array", Side.PAYMENT, KEY, b"[1, 2]", RejectReason.BAD_JSON),
    ("plain text", Side.PAYMENT, KEY, b"hello", RejectReason.BAD_JSON),
    ("bad utf-8", Side.PAYMENT, KEY, b'{"event_id": "\xff"}', RejectReason.BAD_JSON),
    (
        "truncated avro",
        Side.PAYMENT,
        KEY,
        b"\xc3\x01" + PAYMENT_FP + b"\x0aevt",
        RejectReason.BAD_AVRO,
    ),
    (
        "unknown fingerprint",
        Side.PAYMENT,
        KEY,
        b"\xc3\x01" + bytes(8) + b"\x00",
        RejectReason.UNKNOWN_SCHEMA,
    ),
    (
        "confluent without client",
        Side.PAYMENT,
        KEY,
        b"\x00\x00\x00\x00\x01\x02",
        RejectReason.UNKNOWN_SCHEMA,
    ),
    (
        "missing event_id",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, event_id=_DROP),
        RejectReason.MISSING_FIELD,
    ),
    ("null event_id", Side.PAYMENT, KEY, _json(PAYMENT, event_id=None), RejectReason.MISSING_FIELD),
    (
        "missing reference",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, reference=_DROP),
        RejectReason.MISSING_FIELD,
    ),
    (
        "missing amount",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, amount_minor=_DROP),
        RejectReason.MISSING_FIELD,
    ),
    (
        "missing currency",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, currency=_DROP),
        RejectReason.MISSING_FIELD,
    ),
    (
        "missing event_time",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, event_time=_DROP),
        RejectReason.MISSING_FIELD,
    ),
    ("missing kind", Side.PAYMENT, KEY, _json(PAYMENT, kind=_DROP), RejectReason.MISSING_FIELD),
    ("payment fields on ledger", Side.LEDGER, KEY, _json(PAYMENT), RejectReason.MISSING_FIELD),
    (
        "event_time plus junk",
        Side.PAYMENT,
        KEY,
        b'{"event_time": 1, "x": 1}',
        RejectReason.MISSING_FIELD,
    ),
    ("float amount", Side.PAYMENT, KEY, _json(PAYMENT, amount_minor=12.5), RejectReason.BAD_TYPE),
    (
        "integral float amount",
        Side.PAYMENT,
        KEY,
        b'{"event_id":"e","reference":"REF-1","amount_minor":100.0}',
        RejectReason.BAD_TYPE,
    ),
    ("string amount", Side.PAYMENT, KEY, _json(PAYMENT, amount_minor="12"), RejectReason.BAD_TYPE),
    ("bool amount", Side.PAYMENT, KEY, _json(PAYMENT, amount_minor=True), RejectReason.BAD_TYPE),
    ("int event_id", Side.PAYMENT, KEY, _json(PAYMENT, event_id=1), RejectReason.BAD_TYPE),
    ("int reference", Side.PAYMENT, KEY, _json(PAYMENT, reference=1), RejectReason.BAD_TYPE),
    ("numeric currency", Side.PAYMENT, KEY, _json(PAYMENT, currency=978), RejectReason.BAD_TYPE),
    ("float event_time", Side.PAYMENT, KEY, _json(PAYMENT, event_time=1.5), RejectReason.BAD_TYPE),
    ("bool event_time", Side.PAYMENT, KEY, _json(PAYMENT, event_time=True), RejectReason.BAD_TYPE),
    ("int kind", Side.PAYMENT, KEY, _json(PAYMENT, kind=1), RejectReason.BAD_TYPE),
    ("int source", Side.PAYMENT, KEY, _json(PAYMENT, source=5), RejectReason.BAD_TYPE),
    ("int account", Side.LEDGER, KEY, _json(LEDGER, account=5), RejectReason.BAD_TYPE),
    ("list metadata", Side.PAYMENT, KEY, _json(PAYMENT, metadata=["a"]), RejectReason.BAD_TYPE),
    (
        "non-string metadata",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, metadata={"a": 1}),
        RejectReason.BAD_TYPE,
    ),
    ("unknown kind", Side.PAYMENT, KEY, _json(PAYMENT, kind="chargeback"), RejectReason.BAD_VALUE),
    ("direction as kind", Side.PAYMENT, KEY, _json(PAYMENT, kind="credit"), RejectReason.BAD_VALUE),
    (
        "unknown direction",
        Side.LEDGER,
        KEY,
        _json(LEDGER, direction="sideways"),
        RejectReason.BAD_VALUE,
    ),
    ("empty event_id", Side.PAYMENT, KEY, _json(PAYMENT, event_id=""), RejectReason.BAD_VALUE),
    ("long event_id", Side.PAYMENT, KEY, _json(PAYMENT, event_id=LONG), RejectReason.BAD_VALUE),
    (
        "unknown currency",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, currency="XYZ"),
        RejectReason.UNKNOWN_CURRENCY,
    ),
    (
        "lower-case currency",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, currency="eur"),
        RejectReason.UNKNOWN_CURRENCY,
    ),
    ("empty currency", Side.LEDGER, KEY, _json(LEDGER, currency=""), RejectReason.UNKNOWN_CURRENCY),
    ("zero amount", Side.PAYMENT, KEY, _json(PAYMENT, amount_minor=0), RejectReason.BAD_AMOUNT),
    (
        "negative amount",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, amount_minor=-5),
        RejectReason.BAD_AMOUNT,
    ),
    (
        "amount 2**63",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, amount_minor=2**63),
        RejectReason.BAD_AMOUNT,
    ),
    (
        "amount beyond u64",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, amount_minor=0).replace(
            b'"amount_minor":0', b'"amount_minor":18446744073709551616'
        ),
        RejectReason.BAD_AMOUNT,
    ),
    # orjson reads a number past 64 bits as a float: 2**63 or more in magnitude is out of range
    # (compiled and pure Python alike: once compiled, a float-int comparison rounded 2**63-1 up).
    (
        "amount just below -2**63",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, amount_minor=0).replace(
            b'"amount_minor":0', b'"amount_minor":-9223372036854775809'
        ),
        RejectReason.BAD_AMOUNT,
    ),
    (
        "float amount 2**63",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, amount_minor=2.0**63),
        RejectReason.BAD_AMOUNT,
    ),
    (
        "float amount just under 2**63",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, amount_minor=2.0**63 - 1024),
        RejectReason.BAD_TYPE,
    ),
    (
        "empty reference",
        Side.PAYMENT,
        b"",
        _json(PAYMENT, reference=""),
        RejectReason.BAD_REFERENCE,
    ),
    (
        "long reference",
        Side.PAYMENT,
        LONG.encode(),
        _json(PAYMENT, reference=LONG),
        RejectReason.BAD_REFERENCE,
    ),
    (
        "naive time",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, event_time="2026-03-01T10:00:00"),
        RejectReason.BAD_EVENT_TIME,
    ),
    ("negative epoch", Side.LEDGER, KEY, _json(LEDGER, event_time=-1), RejectReason.BAD_EVENT_TIME),
    # A number past 64 bits (orjson: a float) or any float past year 9999 is out of range.
    (
        "event time beyond u64",
        Side.LEDGER,
        KEY,
        _json(LEDGER, event_time=0).replace(
            b'"event_time":0', b'"event_time":18446744073709551616'
        ),
        RejectReason.BAD_EVENT_TIME,
    ),
    (
        "event time below -2**63",
        Side.LEDGER,
        KEY,
        _json(LEDGER, event_time=0).replace(
            b'"event_time":0', b'"event_time":-100000000000000000000'
        ),
        RejectReason.BAD_EVENT_TIME,
    ),
    (
        "heartbeat time 1e300",
        Side.LEDGER,
        None,
        b'{"event_time": 1e300}',
        RejectReason.BAD_EVENT_TIME,
    ),
    (
        "float event time in range",
        Side.LEDGER,
        KEY,
        _json(LEDGER, event_time=1.7e12),
        RejectReason.BAD_TYPE,
    ),
    (
        "bad heartbeat time",
        Side.LEDGER,
        None,
        b'{"event_time": "yesterday"}',
        RejectReason.BAD_EVENT_TIME,
    ),
    ("no key", Side.PAYMENT, None, _json(PAYMENT), RejectReason.KEY_MISMATCH),
    ("empty key", Side.PAYMENT, b"", _json(PAYMENT), RejectReason.KEY_MISMATCH),
    ("other key", Side.LEDGER, b"REF-2", _json(LEDGER), RejectReason.KEY_MISMATCH),
    ("non-utf8 key", Side.LEDGER, b"\xffREF-1", _json(LEDGER), RejectReason.KEY_MISMATCH),
    # Text PostgreSQL cannot hold: NUL anywhere in an event id or reference.
    (
        "NUL in event_id",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, event_id="evt\x00-1"),
        RejectReason.BAD_VALUE,
    ),
    ("NUL event_id", Side.LEDGER, KEY, _json(LEDGER, event_id="\x00"), RejectReason.BAD_VALUE),
    (
        "NUL in reference",
        Side.PAYMENT,
        b"REF\x00-1",
        _json(PAYMENT, reference="REF\x00-1"),
        RejectReason.BAD_REFERENCE,
    ),
    (
        "NUL at the end of reference",
        Side.LEDGER,
        b"REF-1\x00",
        _json(LEDGER, reference="REF-1\x00"),
        RejectReason.BAD_REFERENCE,
    ),
    # Lone surrogates never get that far: orjson refuses them as escapes and as bytes.
    (
        "lone high surrogate escape",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, event_id="SURR").replace(b"SURR", b"\\ud800"),
        RejectReason.BAD_JSON,
    ),
    (
        "lone low surrogate escape",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, reference="SURR").replace(b"SURR", b"R\\udc00"),
        RejectReason.BAD_JSON,
    ),
    (
        "surrogate as UTF-8 bytes",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, reference="SURR").replace(b"SURR", b"R\xed\xa0\x80"),
        RejectReason.BAD_JSON,
    ),
]


@pytest.mark.parametrize(
    ("side", "key", "value", "reason"),
    [pytest.param(*row[1:], id=row[0]) for row in REJECTIONS],
)
def test_rejections(
    side: Side, key: bytes | None, value: bytes | None, reason: RejectReason
) -> None:
    result = decode_input(side, key, value, 7)
    assert isinstance(result, Rejection), result
    assert result.reason is reason, result.detail
    assert result.detail


def test_every_reason_code_is_exercised() -> None:
    covered = {row[4] for row in REJECTIONS}
    covered |= {RejectReason.BAD_AVRO}  # also by the Avro tests below
    # The decoder's reasons; the worker's and the sink's own are tested where they arise.
    not_decoders = {
        RejectReason.PROCESSING_ERROR,
        RejectReason.UNKNOWN_TOPIC,
        RejectReason.SINK_REJECTED,
    }
    assert covered == set(RejectReason) - not_decoders


def _avro_payment(**changes: Any) -> dict[str, Any]:
    record = {**PAYMENT, "event_time": T0, "source": None, "metadata": None}
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("side", "key", "value", "reason"),
    [
        pytest.param(
            Side.PAYMENT,
            KEY,
            encode_avro("PaymentEvent", _avro_payment()) + b"\x00",
            RejectReason.BAD_AVRO,
            id="trailing byte",
        ),
        pytest.param(
            Side.LEDGER,
            KEY,
            encode_avro("PaymentEvent", _avro_payment()),
            RejectReason.UNKNOWN_SCHEMA,
            id="payment schema on ledger",
        ),
        pytest.param(
            Side.PAYMENT,
            KEY,
            encode_avro("PaymentEvent", _avro_payment(amount_minor=0)),
            RejectReason.BAD_AMOUNT,
            id="avro zero amount",
        ),
        pytest.param(
            Side.PAYMENT,
            KEY,
            encode_avro("PaymentEvent", _avro_payment(currency="ZZZ")),
            RejectReason.UNKNOWN_CURRENCY,
            id="avro currency",
        ),
        pytest.param(
            Side.PAYMENT,
            KEY,
            encode_avro("PaymentEvent", _avro_payment(event_id="")),
            RejectReason.BAD_VALUE,
            id="avro empty event_id",
        ),
        pytest.param(
            Side.PAYMENT,
            KEY,
            encode_avro("PaymentEvent", _avro_payment(reference="")),
            RejectReason.BAD_REFERENCE,
            id="avro empty reference",
        ),
        pytest.param(
            Side.PAYMENT,
            KEY,
            encode_avro("PaymentEvent", _avro_payment(event_time=-5)),
            RejectReason.BAD_EVENT_TIME,
            id="avro negative time",
        ),
        pytest.param(
            Side.PAYMENT,
            b"REF-2",
            encode_avro("PaymentEvent", _avro_payment()),
            RejectReason.KEY_MISMATCH,
            id="avro key",
        ),
        pytest.param(
            Side.PAYMENT,
            None,
            encode_avro("Heartbeat", {"event_time": -1}),
            RejectReason.BAD_EVENT_TIME,
            id="avro heartbeat negative",
        ),
        pytest.param(
            Side.PAYMENT,
            KEY,
            encode_avro("PaymentEvent", _avro_payment(event_id="evt-\x00")),
            RejectReason.BAD_VALUE,
            id="avro NUL in event_id",
        ),
        pytest.param(
            Side.PAYMENT,
            b"\x00REF-1",
            encode_avro("PaymentEvent", _avro_payment(reference="\x00REF-1")),
            RejectReason.BAD_REFERENCE,
            id="avro NUL in reference",
        ),
        pytest.param(
            Side.PAYMENT,
            KEY,
            # Same length, so the Avro string length stays right: a surrogate encoded as if it
            # were UTF-8 (CESU-8 style), which fastavro's strict UTF-8 decoding refuses.
            encode_avro("PaymentEvent", _avro_payment(event_id="SURR")).replace(
                b"SURR", b"S\xed\xa0\x80"
            ),
            RejectReason.BAD_AVRO,
            id="avro surrogate bytes in event_id",
        ),
    ],
)
def test_avro_rejections(side: Side, key: bytes | None, value: bytes, reason: RejectReason) -> None:
    result = decode_input(side, key, value, 0)
    assert isinstance(result, Rejection)
    assert result.reason is reason, result.detail


GOOD: list[tuple[str, Side, bytes | None, bytes, dict[str, Any]]] = [
    (
        "json payment, offset time",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT),
        {
            "event_id": "evt-1",
            "amount_minor": 1234,
            "event_time_ms": 1772355600000,
            "flow": Flow.PAYMENT,
        },
    ),
    (
        "json refund, Z time with micros",
        Side.PAYMENT,
        KEY,
        _json(PAYMENT, kind="refund", event_time="2026-03-01T09:00:00.123999Z", source="psp"),
        {
            "event_id": "evt-1",
            "amount_minor": 1234,
            "event_time_ms": 1772355600123,
            "flow": Flow.REFUND,
        },
    ),
    (
        "json ledger credit, epoch ms, extra fields ignored",
        Side.LEDGER,
        KEY,
        _json(LEDGER, account="1000-cash", metadata={"batch": "7"}, future_field=[1]),
        {
            "event_id": "led-1",
            "amount_minor": 1234,
            "event_time_ms": 1772355600000,
            "flow": Flow.PAYMENT,
        },
    ),
    (
        "json ledger debit, max amount, whitespace first",
        Side.LEDGER,
        KEY,
        b"  \n" + _json(LEDGER, direction="debit", amount_minor=2**63 - 1),
        {
            "event_id": "led-1",
            "amount_minor": 2**63 - 1,
            "event_time_ms": 1772355600000,
            "flow": Flow.REFUND,
        },
    ),
    (
        "avro payment",
        Side.PAYMENT,
        KEY,
        encode_avro("PaymentEvent", _avro_payment(event_time=T0 + 5, metadata={"a": "b"})),
        {
            "event_id": "evt-1",
            "amount_minor": 1234,
            "event_time_ms": 1772355600005,
            "flow": Flow.PAYMENT,
        },
    ),
    (
        "avro ledger debit",
        Side.LEDGER,
        KEY,
        encode_avro(
            "LedgerEvent",
            {**LEDGER, "direction": "debit", "currency": "JPY", "account": "x", "metadata": None},
        ),
        {
            "event_id": "led-1",
            "currency": "JPY",
            "event_time_ms": 1772355600000,
            "flow": Flow.REFUND,
        },
    ),
    (
        "unicode reference",
        Side.PAYMENT,
        "Zahlung-ü€".encode(),
        _json(PAYMENT, reference="Zahlung-ü€"),
        {"reference": "Zahlung-ü€"},
    ),
    (
        "noncharacters, astral plane and controls other than NUL",
        Side.PAYMENT,
        "R\uffff\U0010ffff\U0001f600\x01".encode(),
        _json(PAYMENT, reference="R\uffff\U0010ffff\U0001f600\x01", event_id="\x7f\ufffe"),
        {"reference": "R\uffff\U0010ffff\U0001f600\x01", "event_id": "\x7f\ufffe"},
    ),
]


@pytest.mark.parametrize(
    ("side", "key", "value", "expected"), [pytest.param(*row[1:], id=row[0]) for row in GOOD]
)
def test_good_records(
    side: Side, key: bytes | None, value: bytes, expected: dict[str, Any]
) -> None:
    result = decode_input(side, key, value, 42)
    assert isinstance(result, InputEvent), result
    assert result.side is side
    assert result.offset == 42
    assert len(result.content_hash) == 16
    defaults = {"reference": "REF-1", "currency": "EUR"}
    for field, want in {**defaults, **expected}.items():
        assert getattr(result, field) == want, field


def test_json_and_avro_give_same_event() -> None:
    js = decode_input(Side.PAYMENT, KEY, _json(PAYMENT, metadata={"k": "v"}), 3)
    av = decode_input(
        Side.PAYMENT, KEY, encode_avro("PaymentEvent", _avro_payment(metadata={"k": "v"})), 3
    )
    assert isinstance(js, InputEvent)
    assert js == av


def test_content_hash_covers_metadata_side_and_optional_fields() -> None:
    base = decode_input(Side.PAYMENT, KEY, _json(PAYMENT), 1)
    same = decode_input(Side.PAYMENT, KEY, _json(PAYMENT, source=None, unknown="x"), 2)
    meta = decode_input(Side.PAYMENT, KEY, _json(PAYMENT, metadata={"a": "b"}), 1)
    empty_meta = decode_input(Side.PAYMENT, KEY, _json(PAYMENT, metadata={}), 1)
    source = decode_input(Side.PAYMENT, KEY, _json(PAYMENT, source="psp"), 1)
    same_time = decode_input(
        Side.PAYMENT, KEY, _json(PAYMENT, event_time="2026-03-01T09:00:00Z"), 1
    )
    assert isinstance(base, InputEvent)
    assert isinstance(same, InputEvent)
    assert isinstance(same_time, InputEvent)
    assert base.content_hash == same.content_hash == same_time.content_hash
    hashes = {base.content_hash}
    for other in (meta, empty_meta, source):
        assert isinstance(other, InputEvent)
        hashes.add(other.content_hash)
    assert len(hashes) == 4
    ledger = decode_input(Side.LEDGER, KEY, _json(LEDGER, event_id="evt-1"), 1)
    assert isinstance(ledger, InputEvent)
    assert ledger.content_hash != base.content_hash


@pytest.mark.parametrize(
    ("side", "key", "value", "expected_ms"),
    [
        (Side.PAYMENT, None, b'{"event_time": "2026-03-01T10:00:00+01:00"}', T0),
        (Side.LEDGER, b"", b'{"event_time": 1772355600000}', T0),
        (Side.LEDGER, b"anything", b' {"event_time": 0}', 0),
        (Side.PAYMENT, None, encode_avro("Heartbeat", {"event_time": T0}), T0),
        (Side.LEDGER, None, encode_avro("Heartbeat", {"event_time": T0}), T0),
    ],
)
def test_heartbeats(side: Side, key: bytes | None, value: bytes, expected_ms: int) -> None:
    assert decode_input(side, key, value, 9) == Heartbeat(side, expected_ms, 9)


@pytest.mark.parametrize(
    "value",
    [
        b'{"event_time": 0, "source": "psp"}',
        b'{"event_time": 0, "event_id": null}',
        b'{"event_time": 0, "heartbeat": true}',
    ],
)
def test_a_heartbeat_with_other_fields_is_an_event_and_the_detail_says_so(value: bytes) -> None:
    result = decode_input(Side.LEDGER, None, value, 0)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.MISSING_FIELD
    assert "event_id" in result.detail
    assert "heartbeat has event_time and no other field" in result.detail
    # An event without a time is told only what it misses.
    other = decode_input(Side.LEDGER, None, b'{"reference": "R"}', 0)
    assert isinstance(other, Rejection)
    assert other.detail == "missing required field 'event_id'"


@pytest.mark.parametrize(
    ("changes", "reason", "words"),
    [
        ({"event_id": "e\x00"}, RejectReason.BAD_VALUE, ("event_id", "NUL")),
        ({"event_id": "e\ud800"}, RejectReason.BAD_VALUE, ("event_id", "surrogate", "U+D800")),
        ({"reference": "\x00"}, RejectReason.BAD_REFERENCE, ("reference", "NUL")),
        ({"reference": "R\udfff"}, RejectReason.BAD_REFERENCE, ("reference", "U+DFFF")),
    ],
)
def test_records_with_unstorable_text_are_rejected(
    changes: dict[str, str], reason: RejectReason, words: tuple[str, ...]
) -> None:
    """Decoders never produce lone surrogates, but validate_record is public: it checks anyway."""
    record = {**PAYMENT, **changes}
    result = validate_record(record, Side.PAYMENT, KEY, 0)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    for word in words:
        assert word in result.detail
    # The detail itself is storable text.
    assert "\x00" not in result.detail
    result.detail.encode()


UNSTORABLE_SAMPLES = [
    "REF-1",
    "Zahlung-ü€",
    "\uffff\ufffe",
    "\U0010ffff\U0001f600",
    "\x01\x7f\x1b",
    "a\x00",
    "\x00",
    "\ud800",
    "x\udfff",
    "\udbff\udfff",  # two lone surrogates (a Python str, not a pair)
]


def test_unstorable_text_is_exactly_what_postgresql_refuses(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for text in UNSTORABLE_SAMPLES:
            raw = text.encode("utf-8", "surrogatepass")
            try:
                stored = conn.execute("SELECT convert_from(%s, 'UTF8')", [raw]).fetchone()
            except psycopg.DataError:
                accepted = False
            else:
                accepted = stored == (text,)
            assert (unstorable_text(text) is None) is accepted, text


def test_dead_letter_helper() -> None:
    value = _json(PAYMENT, currency="XYZ")
    rejection = decode_input(Side.PAYMENT, KEY, value, 11)
    assert isinstance(rejection, Rejection)
    dl = dead_letter("payments", 2, 11, KEY, value, rejection)
    assert dl == DeadLetter(
        "payments",
        2,
        11,
        KEY,
        value,
        "UNKNOWN_CURRENCY",
        rejection.detail,
        key_size=len(KEY),
        value_size=len(value),
        key_sha256=hashlib.sha256(KEY).hexdigest(),
        value_sha256=hashlib.sha256(value).hexdigest(),
    )


def test_decoder_never_raises_on_garbage() -> None:
    decoder = InputDecoder()
    samples = [b"\xc3", b"\xc3\x01", b"\xc3\x01" + PAYMENT_FP, b"\x00", b"\x00\x00", b"{", b"\t"]
    samples += [b"\xc3\x01" + PAYMENT_FP + bytes([i]) * 40 for i in range(256)]
    for value in samples:
        for side in Side:
            result = decoder.decode(side, KEY, value, 0)
            assert isinstance(result, Rejection | InputEvent | Heartbeat)

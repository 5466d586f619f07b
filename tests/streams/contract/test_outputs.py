"""Output records: exact encode/decode round-trips and error handling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contract import (
    DecodeError,
    EncodeError,
    decode_avro,
    decode_dead_letter,
    decode_exception,
    decode_match,
    default_registry,
    encode_dead_letter,
    encode_exception,
    encode_match,
    to_json,
)
from streams.contract.model import (
    DeadLetter,
    ExceptionKind,
    ExceptionRecord,
    ExceptionStatus,
    Flow,
    MatchRecord,
    Rule,
)

LONGS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
IDS = st.lists(st.text(), max_size=5).map(tuple)

matches = st.builds(
    MatchRecord,
    match_id=st.text(),
    reference=st.text(),
    flow=st.sampled_from(Flow),
    rule=st.sampled_from(Rule),
    currency=st.text(max_size=3),
    payment_amount_minor=LONGS,
    ledger_amount_minor=LONGS,
    difference_minor=LONGS,
    payment_event_ids=IDS,
    ledger_event_ids=IDS,
    first_event_time_ms=LONGS,
    matched_at_ms=LONGS,
    exception_id=st.none() | st.text(),
)
exceptions = st.builds(
    ExceptionRecord,
    exception_id=st.text(),
    reference=st.text(),
    flow=st.sampled_from(Flow),
    kind=st.sampled_from(ExceptionKind),
    status=st.sampled_from(ExceptionStatus),
    currency=st.text(max_size=3),
    ledger_currency=st.none() | st.text(max_size=3),
    payment_amount_minor=LONGS,
    ledger_amount_minor=LONGS,
    payment_event_ids=IDS,
    ledger_event_ids=IDS,
    raised_at_ms=LONGS,
    resolved_at_ms=st.none() | LONGS,
    detail=st.text(),
)
dead_letters = st.builds(
    DeadLetter,
    source_topic=st.text(),
    partition=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    offset=LONGS,
    key=st.none() | st.binary(),
    value=st.none() | st.binary(),
    reason=st.text(),
    detail=st.text(),
    key_size=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    value_size=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    key_sha256=st.none() | st.text(),
    value_sha256=st.none() | st.text(),
)


def _exact(a: object, b: object) -> None:
    assert a == b
    for field in fields(a):  # type: ignore[arg-type]
        va, vb = getattr(a, field.name), getattr(b, field.name)
        assert type(va) is type(vb), field.name  # ints stay ints, tuples stay tuples


@given(matches)
def test_match_round_trip(record: MatchRecord) -> None:
    data = encode_match(record)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == default_registry().current("Match").fingerprint
    _exact(decode_match(data), record)


@given(exceptions)
def test_exception_round_trip(record: ExceptionRecord) -> None:
    _exact(decode_exception(encode_exception(record)), record)


@given(dead_letters)
def test_dead_letter_round_trip(record: DeadLetter) -> None:
    _exact(decode_dead_letter(encode_dead_letter(record)), record)


MATCH = MatchRecord(
    "m-1", "REF-1", Flow.PAYMENT, Rule.SPLIT, "EUR", 1000, 1000, 0, ("p1",), ("l1", "l2"),
    1772355600000, 1772355660000, None,
)  # fmt: skip


def test_generic_decode_and_timestamps_stay_ints() -> None:
    schema, datum = decode_avro(encode_match(MATCH))
    assert schema.name == "Match"
    assert datum["first_event_time"] == 1772355600000
    assert type(datum["matched_at"]) is int


def test_to_json() -> None:
    rendered = orjson.loads(to_json(MATCH))
    assert rendered["rule"] == "split"
    assert rendered["ledger_event_ids"] == ["l1", "l2"]
    dl = orjson.loads(to_json(DeadLetter("payments", 0, 1, b"k", None, "BAD_JSON", "x")))
    assert dl["key"] == "aw=="  # base64
    assert dl["value"] is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: MatchRecord(
            "m", "r", Flow.PAYMENT, Rule.EXACT, "EUR", 2**63, 0, 0, (), (), 0, 0, None
        ),
        lambda: MatchRecord(
            "m",
            "r",
            Flow.PAYMENT,
            Rule.EXACT,
            "EUR",
            1,
            1,
            0,
            (),
            (),
            0,
            0,
            5,  # type: ignore[arg-type]
        ),
        lambda: DeadLetter("t", 2**31, 0, None, None, "BAD_JSON", ""),
        lambda: DeadLetter("t", 0, 0, "key", None, "BAD_JSON", ""),  # type: ignore[arg-type]
    ],
)
def test_encode_errors(make: Callable[[], MatchRecord | DeadLetter]) -> None:
    """A record that does not fit its schema never reaches a topic: the encoder refuses it,
    or, with the compiled core (streams/native.py), an ill-typed one cannot even be built."""

    def build_and_encode() -> bytes:
        record = make()
        encode = encode_match if isinstance(record, MatchRecord) else encode_dead_letter
        return encode(record)  # type: ignore[arg-type]

    with pytest.raises((EncodeError, TypeError)):
        build_and_encode()


def test_decode_errors() -> None:
    good = encode_match(MATCH)
    exc_fp = default_registry().current("Exception").fingerprint
    for bad in (
        b"",
        b"{}",
        good[:-1],
        good + b"\x00",
        b"\xc3\x01" + bytes(8),
        b"\xc3\x01" + exc_fp,
    ):
        with pytest.raises(DecodeError):
            decode_match(bad)
    with pytest.raises(DecodeError):
        decode_exception(good)  # a Match is not an Exception
    with pytest.raises(DecodeError):
        decode_avro(b"\xc3\x01" + bytes(8))

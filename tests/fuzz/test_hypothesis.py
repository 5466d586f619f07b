"""Records generated from the Avro schemas (schemas/), then mutated: byte flips, field drops,
type swaps. The decoder never raises, and always returns a valid record or a rejection with a
documented reason; where the input was built to be valid, or to have known defects, the
outcome is that one.

The strategies below are built from the .avsc files themselves: a field's strategy follows its
Avro type. Expected reasons come from how each value was drawn (a value drawn from the invalid
side of a field's rule carries that rule's reason), never from running the decoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract.codec import decode_dead_letter, encode_dead_letter
from streams.contract.decode import (
    MAX_EVENT_TIME_MS,
    Decoded,
    InputDecoder,
    Rejection,
    dead_letter,
    unstorable_text,
)
from streams.contract.model import Heartbeat, InputEvent, Side
from tests.fuzz.corpus import (
    ACCEPTED,
    FakeRegistryClient,
    avro_body,
    avro_single_object,
    confluent_frame,
)
from tests.fuzz.test_corpus import documented_reasons

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = {
    Side.PAYMENT: orjson.loads((ROOT / "schemas/PaymentEvent/v1.avsc").read_bytes()),
    Side.LEDGER: orjson.loads((ROOT / "schemas/LedgerEvent/v1.avsc").read_bytes()),
}
SCHEMA_ID = {Side.PAYMENT: 1, Side.LEDGER: 2}
REASONS = documented_reasons()
MAX_LONG = 2**63 - 1
#: ISO 4217 codes (a sample); anything not of three upper-case ASCII letters is none.
ISO = ("EUR", "USD", "GBP", "JPY", "CHF", "SEK", "NOK", "PLN", "INR", "BRL", "XCG", "ZWG")
# A fixed, quick set in `make test`; RECON_FUZZ_EXAMPLES=N draws N fresh examples per property.
_EXAMPLES = os.environ.get("RECON_FUZZ_EXAMPLES", "")
SETTINGS = settings(
    max_examples=int(_EXAMPLES or 200),
    deadline=None,
    derandomize=not _EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


DECODER = InputDecoder(schema_registry_client=FakeRegistryClient())


# ---------------------------------------------------------------------------- strategies

_TEXT = st.text(max_size=160)
_STORABLE = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])


@dataclass(frozen=True)
class Drawn:
    """A record and the reasons it must be rejected for (empty: valid)."""

    record: dict[str, Any]
    reasons: frozenset[str]


def _text_rule(reason: str, valid: bool) -> st.SearchStrategy[tuple[str, str | None]]:
    """An id or reference: 1-128 storable characters, or not (with ``reason``)."""
    good = st.text(_STORABLE, min_size=1, max_size=128).map(lambda s: (s, None))
    if valid:
        return good
    bad = st.one_of(
        st.just(""),
        st.text(_STORABLE, min_size=129, max_size=300),
        st.tuples(st.text(max_size=20), st.text(max_size=20)).map(lambda p: p[0] + "\x00" + p[1]),
    ).map(lambda s: (s, reason))
    return st.one_of(good, bad)


def _iso(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isalpha() and text.isupper()


def _field_strategy(
    name: str, avro_type: Any, valid: bool
) -> st.SearchStrategy[tuple[Any, str | None]]:
    """A value for field ``name`` of Avro type ``avro_type`` and the reason it is invalid
    (None when valid): the contract's rule for the field, on top of its Avro type. ``valid``:
    only values the rule accepts."""
    if name == "event_id":
        return _text_rule("BAD_VALUE", valid)
    if name == "reference":
        return _text_rule("BAD_REFERENCE", valid)
    if name == "amount_minor":
        low = 1 if valid else -(2**63)
        return st.integers(low, MAX_LONG).map(lambda n: (n, None if n > 0 else "BAD_AMOUNT"))
    if name == "currency":
        good = st.sampled_from(ISO).map(lambda c: (c, None))
        if valid:
            return good
        return st.one_of(
            good, _TEXT.filter(lambda t: not _iso(t)).map(lambda t: (t, "UNKNOWN_CURRENCY"))
        )
    if name == "event_time":
        low, high = (0, MAX_EVENT_TIME_MS) if valid else (-(2**63), MAX_LONG)
        return st.integers(low, high).map(
            lambda n: (n, None if 0 <= n <= MAX_EVENT_TIME_MS else "BAD_EVENT_TIME")
        )
    return _avro_value(avro_type).map(lambda v: (v, None))


def _avro_value(avro_type: Any) -> st.SearchStrategy[Any]:
    """Any value of an Avro type (the schema's own range, no contract rule)."""
    if isinstance(avro_type, list):
        return st.one_of([_avro_value(t) for t in avro_type])
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "enum":
            return st.sampled_from(avro_type["symbols"])
        if kind == "map":
            return st.dictionaries(_TEXT, _avro_value(avro_type["values"]), max_size=4)
        if kind == "long":
            return st.integers(-(2**63), MAX_LONG)
        raise AssertionError(f"no strategy for {avro_type}")
    if avro_type == "null":
        return st.none()
    if avro_type == "string":
        return _TEXT
    if avro_type == "long":
        return st.integers(-(2**63), MAX_LONG)
    raise AssertionError(f"no strategy for {avro_type}")


@st.composite
def drawn_records(draw: st.DrawFn, side: Side, valid: bool = False) -> Drawn:
    """A record of ``side``'s schema; ``valid``: one the contract accepts."""
    record: dict[str, Any] = {}
    reasons: set[str] = set()
    for f in SCHEMA[side]["fields"]:
        value, reason = draw(_field_strategy(f["name"], f["type"], valid))
        record[f["name"]] = value
        if reason is not None:
            reasons.add(reason)
    return Drawn(record, frozenset(reasons))


SIDES = st.sampled_from((Side.PAYMENT, Side.LEDGER))


def _encode(side: Side, record: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(record)
    if fmt == "avro":
        return avro_single_object(side, record)
    return confluent_frame(SCHEMA_ID[side], avro_body(side, record))


def _key(record: dict[str, Any]) -> bytes:
    return str(record["reference"]).encode()


def assert_contract(result: Decoded, side: Side, key: bytes | None, value: bytes | None) -> None:
    """What every outcome must be: an event that satisfies the contract, a heartbeat, or a
    documented reason whose dead letter encodes and stores."""
    if isinstance(result, Rejection):
        assert result.reason.value in REASONS, result
        assert not result.detail.startswith("unexpected decoding error"), result.detail
        letter = dead_letter("t", 0, 0, key, value, result)
        assert unstorable_text(letter.detail) is None
        assert decode_dead_letter(encode_dead_letter(letter)) == letter
    elif isinstance(result, InputEvent):
        assert result.side is side
        assert 1 <= len(result.event_id) <= 128
        assert unstorable_text(result.event_id) is None
        assert 1 <= len(result.reference) <= 128
        assert unstorable_text(result.reference) is None
        assert key == result.reference.encode()
        assert 1 <= result.amount_minor <= MAX_LONG
        assert _iso(result.currency)
        assert 0 <= result.event_time_ms <= MAX_EVENT_TIME_MS
    else:
        assert isinstance(result, Heartbeat), result
        assert 0 <= result.event_time_ms <= MAX_EVENT_TIME_MS


def outcome(result: Decoded) -> str:
    return result.reason.value if isinstance(result, Rejection) else ACCEPTED


# ---------------------------------------------------------------------------- properties


@SETTINGS
@given(side=SIDES, data=st.data(), fmt=st.sampled_from(("json", "avro", "confluent")))
def test_records_from_the_schemas_get_their_reasons(
    side: Side, data: st.DataObject, fmt: str
) -> None:
    drawn = data.draw(drawn_records(side))
    value = _encode(side, drawn.record, fmt)
    key = _key(drawn.record)
    result = DECODER.decode(side, key, value, 0)
    assert_contract(result, side, key, value)
    if drawn.reasons:
        assert outcome(result) in drawn.reasons
    else:
        assert isinstance(result, InputEvent), result


@SETTINGS
@given(side=SIDES, data=st.data())
def test_valid_records_decode_alike_in_every_format(side: Side, data: st.DataObject) -> None:
    drawn = data.draw(drawn_records(side, valid=True))
    key = _key(drawn.record)
    results = {
        fmt: DECODER.decode(side, key, _encode(side, drawn.record, fmt), 7)
        for fmt in ("json", "avro", "confluent")
    }
    assert isinstance(results["json"], InputEvent), results
    assert results["avro"] == results["json"] == results["confluent"]


@SETTINGS
@given(
    side=SIDES,
    data=st.data(),
    fmt=st.sampled_from(("json", "avro", "confluent")),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.none() | st.integers(0, 10**6),
)
def test_byte_flips_never_break_the_decoder(
    side: Side, data: st.DataObject, fmt: str, flips: list[tuple[int, int]], cut: int | None
) -> None:
    drawn = data.draw(drawn_records(side, valid=data.draw(st.booleans())))
    value = bytearray(_encode(side, drawn.record, fmt))
    for position, byte in flips:
        value[position % len(value)] = byte
    if cut is not None:
        del value[cut % (len(value) + 1) :]
    key = data.draw(st.sampled_from((_key(drawn.record), None, b"\xff\xfe")))
    result = DECODER.decode(side, key, bytes(value), 0)
    assert_contract(result, side, key, bytes(value))


REQUIRED = {
    Side.PAYMENT: ("event_id", "reference", "amount_minor", "currency", "event_time", "kind"),
    Side.LEDGER: ("event_id", "reference", "amount_minor", "currency", "event_time", "direction"),
}


@SETTINGS
@given(side=SIDES, data=st.data())
def test_a_dropped_field(side: Side, data: st.DataObject) -> None:
    drawn = data.draw(drawn_records(side, valid=True))
    name = data.draw(st.sampled_from(sorted(drawn.record)))
    record = {k: v for k, v in drawn.record.items() if k != name}
    result = DECODER.decode(side, _key(drawn.record), orjson.dumps(record), 0)
    assert outcome(result) == ("MISSING_FIELD" if name in REQUIRED[side] else ACCEPTED)


# JSON values of every type, none of which is valid for the fields it replaces below (the dict
# has a non-string value, so it is not a valid metadata map either).
SWAPS: dict[str, Any] = {
    "null": None,
    "bool": True,
    "int": 5,
    "float": 1.5,
    "string": "not-a-time",
    "list": ["a"],
    "dict": {"k": 1},
}


def swap_reason(side: Side, name: str, kind: str) -> str:
    """The reason of field ``name`` replaced by a value of JSON type ``kind``, by the contract."""
    optional = name not in REQUIRED[side]
    if kind == "null":
        return ACCEPTED if optional else "MISSING_FIELD"
    string_fields = {"event_id", "reference", "currency", "kind", "direction", "source", "account"}
    if name in string_fields:
        if kind == "string":  # a string of the wrong value
            return {
                "currency": "UNKNOWN_CURRENCY",
                "kind": "BAD_VALUE",
                "direction": "BAD_VALUE",
            }.get(name, ACCEPTED)
        return "BAD_TYPE"
    if name == "amount_minor":
        return (
            "BAD_AMOUNT"
            if kind == "int" and SWAPS[kind] <= 0
            else ("BAD_TYPE" if kind != "int" else ACCEPTED)
        )
    if name == "event_time":
        if kind == "string":
            return "BAD_EVENT_TIME"
        return ACCEPTED if kind == "int" else "BAD_TYPE"
    assert name == "metadata", name
    return "BAD_TYPE"


@SETTINGS
@given(side=SIDES, data=st.data(), kind=st.sampled_from(sorted(SWAPS)))
def test_a_swapped_type(side: Side, data: st.DataObject, kind: str) -> None:
    drawn = data.draw(drawn_records(side, valid=True))
    name = data.draw(st.sampled_from(sorted(drawn.record)))
    record = {**drawn.record, name: SWAPS[kind]}
    key = _key(drawn.record)
    if name == "reference" and kind == "string":
        key = b"not-a-time"
    result = DECODER.decode(side, key, orjson.dumps(record), 0)
    assert_contract(result, side, key, orjson.dumps(record))
    assert outcome(result) == swap_reason(side, name, kind), (name, kind, result)


@SETTINGS
@given(
    data=st.data(),
    extra=st.dictionaries(
        _TEXT.filter(lambda k: k != "event_time"),
        st.none() | st.integers(-(2**63), MAX_LONG) | _TEXT,
        min_size=1,
        max_size=3,
    ),
)
def test_heartbeats_with_extra_fields_are_not_heartbeats(
    data: st.DataObject, extra: dict[str, Any]
) -> None:
    t = data.draw(st.integers(0, MAX_EVENT_TIME_MS))
    side = data.draw(SIDES)
    value = orjson.dumps({"event_time": t, **extra})
    result = DECODER.decode(side, None, value, 0)
    assert_contract(result, side, None, value)
    # Not a heartbeat (it has more than event_time): an event, and one with no usable event_id.
    assert outcome(result) in {"MISSING_FIELD", "BAD_TYPE", "BAD_VALUE"}
    assert DECODER.decode(side, None, orjson.dumps({"event_time": t}), 0) == Heartbeat(side, t, 0)


@pytest.mark.parametrize("fmt", ["json", "avro", "confluent"])
def test_every_truncation_of_a_valid_record(fmt: str) -> None:
    record = {
        "event_id": "e-1",
        "reference": "R-\U0001f4b8",
        "amount_minor": 10**12,
        "currency": "EUR",
        "event_time": 1_767_225_600_000,
        "kind": "refund",
        "source": "psp",
        "metadata": {"a": "b"},
    }
    value = _encode(Side.PAYMENT, record, fmt)
    key = _key(record)
    assert isinstance(DECODER.decode(Side.PAYMENT, key, value, 0), InputEvent)
    for n in range(len(value)):
        result = DECODER.decode(Side.PAYMENT, key, value[:n], 0)
        assert_contract(result, Side.PAYMENT, key, value[:n])
        assert isinstance(result, Rejection), (n, result)

"""FastRecord writes the same bytes as fastavro and reads what fastavro reads, for every
contract schema, on generated records; it refuses truncated and trailing bytes."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.avro_fast import FastRecord, UnsupportedSchemaError
from streams.contract.codec import encode_single_object
from streams.contract.exceptions import DecodeError, EncodeError
from streams.contract.registry import SchemaVersion, default_registry

VERSIONS = list(default_registry())
LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _strategy(schema: Any) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):  # ["null", T]
        return st.none() | _strategy(schema[1])
    if isinstance(schema, dict):
        t = schema["type"]
        if t == "enum":
            return st.sampled_from(schema["symbols"])
        if t == "array":
            return st.lists(_strategy(schema["items"]), max_size=4)
        if t == "map":
            return st.dictionaries(st.text(max_size=5), _strategy(schema["values"]), max_size=3)
        return _strategy(t)
    return {
        "string": st.text(max_size=20),
        "bytes": st.binary(max_size=20),
        "int": st.integers(min_value=-(2**31), max_value=2**31 - 1),
        "long": LONG,
        "boolean": st.booleans(),
        "null": st.none(),
    }[schema]


def _datum(version: SchemaVersion) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {f["name"]: _strategy(f["type"]) for f in version.parsed["fields"]}
    )


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v.name}-v{v.version}")
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_same_bytes_as_fastavro_and_read_back(version: SchemaVersion, data: st.DataObject) -> None:
    fast = FastRecord(version.parsed)
    datum = data.draw(_datum(version))
    expected = encode_single_object(version, datum)
    assert fast.encode(version.header, datum) == expected
    fo = BytesIO(expected)
    fo.seek(10)
    assert fast.decode(expected, 10) == schemaless_reader(fo, version.parsed, None)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v.name}-v{v.version}")
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_truncated_or_trailing_bytes_are_refused(
    version: SchemaVersion, data: st.DataObject
) -> None:
    fast = FastRecord(version.parsed)
    raw = fast.encode(version.header, data.draw(_datum(version)))
    cut = data.draw(st.integers(min_value=10, max_value=len(raw) - 1))
    with pytest.raises(DecodeError):
        fast.decode(raw[:cut], 10)
    with pytest.raises(DecodeError):
        fast.decode(raw + b"\x00", 10)


def test_out_of_range_and_ill_typed_values_are_refused() -> None:
    match = default_registry().current("Match")
    fast = FastRecord(match.parsed)
    good = {
        "match_id": "m", "reference": "r", "flow": "payment", "rule": "exact",
        "currency": "EUR", "payment_amount_minor": 1, "ledger_amount_minor": 1,
        "difference_minor": 0, "payment_event_ids": ["p"], "ledger_event_ids": ["l"],
        "first_event_time": 0, "matched_at": 0, "exception_id": None,
    }  # fmt: skip
    assert fast.decode(fast.encode(match.header, good), 10) == good
    for field, bad in (
        ("payment_amount_minor", 2**63),
        ("payment_amount_minor", "1"),
        ("flow", "sideways"),
        ("reference", 5),
        ("payment_event_ids", "p"),
    ):
        with pytest.raises(EncodeError):
            fast.encode(match.header, {**good, field: bad})


def test_unsupported_types_are_left_to_fastavro() -> None:
    with pytest.raises(UnsupportedSchemaError):
        FastRecord({"type": "record", "name": "x", "fields": [{"name": "f", "type": "double"}]})

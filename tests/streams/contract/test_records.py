"""Every copy of an output record's fields agrees with its one source, the Avro schema, field by
field: the model's dataclass (names, order and types), the output codec, the engine's state
codec and the simulator's check of the tables. The SQL tables and the sink's rows:
tests/connectors/postgres/test_rows.py."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

import streams.contract
from streams.contract.codec import OutputCodec, decode_avro
from streams.contract.exceptions import SchemaError
from streams.contract.model import DeadLetter, ExceptionRecord, MatchRecord
from streams.contract.records import (
    BYTES,
    DEAD_LETTER,
    ENUM,
    EXCEPTION,
    INT,
    LONG,
    MATCH,
    TEXT,
    TEXT_ARRAY,
    TIME,
    RecordLayout,
)
from streams.contract.registry import default_registry
from streams.engine import codec as state_codec
from streams.simulate import truth, verify_pg

LAYOUTS = [MATCH, EXCEPTION, DEAD_LETTER]
IDS = [layout.schema.name for layout in LAYOUTS]
MODEL_SOURCE = Path(streams.contract.__file__).parent / "model.py"
T0 = 1_767_225_600_000
# Values the sink's checks accept for these text fields (tests/connectors/postgres uses them too).
TEXT_VALUES = {
    "currency": "EUR",
    "ledger_currency": "USD",
    "key_sha256": "a" * 64,
    "value_sha256": "b" * 64,
}


def marker(layout: RecordLayout[Any], *, nulls: bool = False) -> Any:
    """A record of ``layout`` with a different value in every field (None in optional ones when
    ``nulls``), built from the schema alone: a field added to it is covered with no edit here."""
    values: list[Any] = []
    for i, f in enumerate(layout.fields):
        if nulls and f.optional:
            values.append(None)
        elif f.kind == TEXT:
            values.append(TEXT_VALUES.get(f.name, f"{f.name}:{i}"))
        elif f.kind in (LONG, INT):
            values.append(1000 + i)
        elif f.kind == TIME:
            values.append(T0 + i)
        elif f.kind == BYTES:
            values.append(f"{f.name}:{i}".encode())
        elif f.kind == ENUM:
            assert f.enum is not None
            values.append(list(f.enum)[i % len(f.enum)])
        else:
            assert f.kind == TEXT_ARRAY
            values.append((f"{f.name}:a", f"{f.name}:b"))
    return layout.model_class(*values)


def plain(value: Any) -> Any:
    """A model value as Avro and JSON give it: arrays as lists, enums as their symbols."""
    if isinstance(value, tuple):
        return list(value)
    return value.value if hasattr(value, "value") else value


def _python_type(avro_type: Any) -> str:
    """The model annotation a field of this Avro type must have."""
    if isinstance(avro_type, list):
        return f"{_python_type(avro_type[1])} | None"
    if isinstance(avro_type, dict):
        if avro_type["type"] == "enum":
            return str(avro_type["name"])
        if avro_type["type"] == "array":
            return f"tuple[{_python_type(avro_type['items'])}, ...]"
        return _python_type(avro_type["type"])
    return {"string": "str", "long": "int", "int": "int", "bytes": "bytes"}[avro_type]


def _model_annotations(class_name: str) -> dict[str, str]:
    """The dataclass's annotations as written in model.py (the compiled class keeps no types)."""
    tree = ast.parse(MODEL_SOURCE.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return {
        n.target.id: ast.unparse(n.annotation)
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_the_model_is_the_schema_field_by_field(layout: RecordLayout[Any]) -> None:
    schema = default_registry().current(layout.schema.name)
    assert layout.schema is schema
    assert layout.exact  # the repo's model holds every field of the repo's current schema
    model_class: Any = layout.model_class
    annotations = _model_annotations(model_class.__name__)
    assert [f.name for f in dataclasses.fields(model_class)] == list(annotations)
    raw_fields = schema.raw["fields"]
    assert list(annotations) == [f.attr for f in layout.fields]
    assert [f.name for f in layout.fields] == [f["name"] for f in raw_fields]
    for f, raw in zip(layout.fields, raw_fields, strict=True):
        assert annotations[f.attr] == _python_type(raw["type"]), f.name
        if f.enum is not None:
            avro_enum = raw["type"][1] if isinstance(raw["type"], list) else raw["type"]
            assert [m.value for m in f.enum] == avro_enum["symbols"], f.name


@pytest.mark.parametrize("nulls", [False, True], ids=["values", "nulls"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_the_output_codec_writes_every_field_under_its_schema_name(
    layout: RecordLayout[Any], nulls: bool
) -> None:
    record = marker(layout, nulls=nulls)
    codec = OutputCodec()
    name = {"Match": "match", "Exception": "exception", "DeadLetter": "dead_letter"}
    data = getattr(codec, f"encode_{name[layout.schema.name]}")(record)
    schema, datum = decode_avro(data)  # fastavro, not our codec
    assert schema is layout.schema
    assert list(datum) == list(layout.names)
    for f in layout.fields:
        assert datum[f.name] == plain(getattr(record, f.attr)), f.name
    assert getattr(codec, f"decode_{name[layout.schema.name]}")(data) == record


@pytest.mark.parametrize("nulls", [False, True], ids=["values", "nulls"])
def test_the_engine_stores_an_exception_as_its_fields_in_schema_order(nulls: bool) -> None:
    record: ExceptionRecord = marker(EXCEPTION, nulls=nulls)
    raw = state_codec.encode_exception(record, [b"\x01\x02"])
    stored, gids = orjson.loads(raw)
    assert gids == ["0102"]
    assert stored == [plain(getattr(record, f.attr)) for f in EXCEPTION.fields]
    assert state_codec.decode_exception(raw) == (record, [b"\x01\x02"])


def test_values_written_before_trailing_fields_with_defaults_read_with_the_defaults() -> None:
    """State or records of a layout before its newest optional fields were added."""
    full = marker(DEAD_LETTER)
    values = DEAD_LETTER.values(full)
    trailing = [f for f in DEAD_LETTER.fields if f.name.endswith(("_size", "_sha256"))]
    older = values[: len(values) - len(trailing)]
    assert DEAD_LETTER.from_values(older) == dataclasses.replace(
        full, **{f.attr: None for f in trailing}
    )
    with pytest.raises(ValueError, match="values for"):
        MATCH.from_values(MATCH.values(marker(MATCH))[:-2])  # matched_at has no default


def test_a_model_field_the_schema_lacks_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class HalfAdded:
        match_id: str
        reference: str
        note: str

    with pytest.raises(SchemaError, match=r"HalfAdded.note is not a field of Match"):
        RecordLayout(MATCH.schema, HalfAdded)


def test_a_model_in_another_order_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Swapped:
        reference: str
        match_id: str

    with pytest.raises(SchemaError, match="not in the order"):
        RecordLayout(MATCH.schema, Swapped)


def test_a_schema_field_without_default_missing_in_the_model_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Short:
        match_id: str

    with pytest.raises(SchemaError, match="'reference' has no default"):
        RecordLayout(MATCH.schema, Short)


def test_the_simulators_check_reads_fields_of_the_schema_that_the_truth_knows() -> None:
    match: MatchRecord = marker(MATCH)
    exception: ExceptionRecord = marker(EXCEPTION)
    assert set(verify_pg.MATCH_FIELDS) <= set(MATCH.names)
    assert set(verify_pg.EXCEPTION_FIELDS) <= set(EXCEPTION.names)
    assert set(truth.match_fields(match)) == set(verify_pg.MATCH_FIELDS)
    assert set(truth.exception_fields(exception, resolved=True)) == set(verify_pg.EXCEPTION_FIELDS)


def test_dead_letter_model_defaults_are_the_schemas() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(DeadLetter)}
    for f in DEAD_LETTER.fields:
        if f.attr in defaults and defaults[f.attr] is not dataclasses.MISSING:
            assert f.has_default, f.name
            assert defaults[f.attr] == f.default, f.name


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
def test_versions_only_append_fields(layout: RecordLayout[Any]) -> None:
    """The engine stores an exception by position, and older state reads with the defaults of
    the fields after it: so a version may add fields only after the ones before it."""
    current = [f["name"] for f in layout.schema.raw["fields"]]
    for old in default_registry().versions(layout.schema.name):
        names = [f["name"] for f in old.raw["fields"]]
        assert current[: len(names)] == names, f"v{old.version}"

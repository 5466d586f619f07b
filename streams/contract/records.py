"""The fields of each output record, derived once from its Avro schema: their one source.

The current version of ``schemas/<Name>/`` defines an output record's fields (Match, Exception,
DeadLetter): their order, names and types. Everything else that lists them is derived from it
here, once per schema (at import for the default registry), so a record costs nothing more:

* the output codec writes and reads the schema's fields by position (:mod:`.codec`);
* the engine stores an exception as its fields in this order (:mod:`streams.engine.codec`);
* the sink's columns, column types and rows (``connectors/postgres/rows.py``) and the columns
  the simulator's check reads back (:mod:`streams.simulate.verify_pg`) are the fields' names.

The model's dataclasses (:mod:`.model`) are the typed view the engine builds and reads: mypy and
mypyc need their attributes spelled out. A :class:`RecordLayout` refuses a model whose attributes
are not the schema's fields in the schema's order (a ``timestamp-millis`` field ``t`` is the
attribute ``t_ms``; an enum named ``E`` is ``model.E``). A newer schema may hold more fields than
the model (a reader deployed before its writer): they have defaults, which the encoder writes.
tests/streams/contract/test_records.py checks the types too, and the SQL tables.

Adding a field: a new schema version, its attribute in the model, and a SQL migration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from operator import attrgetter
from typing import Any, Final, Generic, TypeVar

from streams.contract import model
from streams.contract.exceptions import SchemaError
from streams.contract.registry import SchemaVersion, default_registry

# What a field holds, by its Avro type.
TEXT: Final = 0  # string
LONG: Final = 1  # long
INT: Final = 2  # int (32 bits)
BYTES: Final = 3  # bytes
ENUM: Final = 4  # enum: a member of the model's StrEnum of the same name
TEXT_ARRAY: Final = 5  # array of strings: a tuple in the model
TIME: Final = 6  # long timestamp-millis: epoch ms, the attribute ``<name>_ms``

_PRIMITIVE_KINDS: Final = {"string": TEXT, "long": LONG, "int": INT, "bytes": BYTES}
TIME_SUFFIX: Final = "_ms"

R = TypeVar("R")


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One field of an output record."""

    name: str  # the Avro field's name, and the sink's column
    attr: str  # the model's attribute
    kind: int
    optional: bool  # ["null", T]
    has_default: bool
    default: Any  # the schema's default (None when it has none)
    enum: type[StrEnum] | None  # the model's enum for an ENUM field


def _kind(avro_type: Any, where: str) -> tuple[int, bool]:
    """(kind, optional) of an Avro field type, as written in the .avsc."""
    if isinstance(avro_type, list):
        if len(avro_type) == 2 and avro_type[0] == "null":
            return _kind(avro_type[1], where)[0], True
    elif isinstance(avro_type, str) and avro_type in _PRIMITIVE_KINDS:
        return _PRIMITIVE_KINDS[avro_type], False
    elif isinstance(avro_type, dict):
        t = avro_type.get("type")
        if t == "enum":
            return ENUM, False
        if t == "array" and avro_type.get("items") == "string":
            return TEXT_ARRAY, False
        if t == "long" and avro_type.get("logicalType") == "timestamp-millis":
            return TIME, False
        if isinstance(t, str) and t in _PRIMITIVE_KINDS and "logicalType" not in avro_type:
            return _PRIMITIVE_KINDS[t], False
    raise SchemaError(f"{where}: an output record field of type {avro_type!r} is not supported")


def _enum_of(avro_type: Any) -> type[StrEnum] | None:
    if isinstance(avro_type, list):
        return _enum_of(avro_type[1])
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        found = getattr(model, str(avro_type["name"]), None)
        if isinstance(found, type) and issubclass(found, StrEnum):
            return found
        raise SchemaError(f"enum {avro_type['name']!r} has no StrEnum of that name in the model")
    return None


def schema_fields(schema: SchemaVersion) -> tuple[Field, ...]:
    """The fields of an output record's schema version, in the schema's order."""
    out = []
    for f in schema.raw["fields"]:
        name = str(f["name"])
        kind, optional = _kind(f["type"], f"{schema.name}.{name}")
        attr = name + TIME_SUFFIX if kind == TIME else name
        enum = _enum_of(f["type"])
        out.append(Field(name, attr, kind, optional, "default" in f, f.get("default"), enum))
    return tuple(out)


class RecordLayout(Generic[R]):
    """One output record's schema version and its model class, matched field by field."""

    def __init__(self, schema: SchemaVersion, model_class: Callable[..., R]) -> None:
        self.schema = schema
        self.model_class = model_class
        self.schema_fields = schema_fields(schema)
        by_attr = {f.attr: i for i, f in enumerate(self.schema_fields)}
        attrs = [f.name for f in dataclasses.fields(model_class)]  # type: ignore[arg-type]
        picks = []
        for attr in attrs:
            if attr not in by_attr:
                raise SchemaError(
                    f"{getattr(model_class, '__name__', model_class)}.{attr} is not a field of "
                    f"{schema.name} v{schema.version}"
                )
            picks.append(by_attr[attr])
        if picks != sorted(picks):
            raise SchemaError(f"the model's fields are not in the order of {schema.name}")
        for i, f in enumerate(self.schema_fields):
            if i not in picks and not f.has_default:
                raise SchemaError(
                    f"{schema.name} v{schema.version} field {f.name!r} has no default and no "
                    "attribute in the model"
                )
        #: The model's fields: the schema's, or the first of them when the schema is newer.
        self.fields: tuple[Field, ...] = tuple(self.schema_fields[i] for i in picks)
        self.names: tuple[str, ...] = tuple(f.name for f in self.fields)
        self.exact = len(picks) == len(self.schema_fields)
        self._picks = picks
        self._getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*attrs)
        self._enums: list[tuple[int, Mapping[str, Any]]] = [
            (i, {m.value: m for m in f.enum})
            for i, f in enumerate(self.fields)
            if f.enum is not None
        ]
        self._arrays: list[int] = [i for i, f in enumerate(self.fields) if f.kind == TEXT_ARRAY]
        # Defaults of the model's trailing fields, for values written before they existed.
        defaults: list[Any] = []
        for f in reversed(self.fields):
            if not f.has_default:
                break
            defaults.append(f.default)
        self._trailing_defaults = defaults[::-1]

    def values(self, record: R) -> tuple[Any, ...]:
        """The model's field values, in the schema's order (enums as their StrEnum members)."""
        return self._getter(record)

    def schema_values(self, record: R) -> Sequence[Any]:
        """Every field value of the schema version, defaults for those the model lacks."""
        values = self._getter(record)
        if self.exact:
            return values
        out = [f.default for f in self.schema_fields]
        for i, pick in enumerate(self._picks):
            out[pick] = values[i]
        return out

    def from_values(self, values: Sequence[Any]) -> R:
        """The model record of its field values (as :meth:`values` or JSON give them: enums as
        symbols, arrays as lists). Trailing fields missing take their defaults. Raises KeyError
        for an unknown enum symbol, ValueError for a wrong count, TypeError for a wrong type."""
        args = list(values)
        n = len(self.fields)
        if len(args) != n:
            missing = n - len(args)
            if not 0 < missing <= len(self._trailing_defaults):
                raise ValueError(f"{self.schema.name}: {len(args)} values for {n} fields")
            args.extend(self._trailing_defaults[len(self._trailing_defaults) - missing :])
        for i, table in self._enums:
            v = args[i]
            if v is not None:
                args[i] = table[v]
        for i in self._arrays:
            v = args[i]
            if v is not None:
                args[i] = tuple(v)
        return self.model_class(*args)

    def from_schema_values(self, values: Sequence[Any]) -> R:
        """The model record of every field value of the schema version, in its order."""
        if self.exact:
            return self.from_values(values)
        return self.from_values([values[i] for i in self._picks])


MATCH_SCHEMA: Final = "Match"
EXCEPTION_SCHEMA: Final = "Exception"
DEAD_LETTER_SCHEMA: Final = "DeadLetter"

#: The layouts of the default registry's current versions: the contract as the repo has it.
MATCH: Final = RecordLayout(default_registry().current(MATCH_SCHEMA), model.MatchRecord)
EXCEPTION: Final = RecordLayout(default_registry().current(EXCEPTION_SCHEMA), model.ExceptionRecord)
DEAD_LETTER: Final = RecordLayout(default_registry().current(DEAD_LETTER_SCHEMA), model.DeadLetter)

"""Avro binary encoding of flat records, built from their parsed schema, for the hot path.

fastavro spends about 6 us per output record in call overhead and dict handling; this module
writes and reads the contract's record shapes directly and is compiled with the core
(streams/native.py), which makes it several times faster. It takes and gives the same datum
dicts as fastavro's ``schemaless_writer`` / ``schemaless_reader``, and tests check both agree
byte for byte. A schema with a type it does not know (a nested record, a float, a union of two
non-null types) raises :class:`UnsupportedSchemaError`; callers then keep fastavro.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from streams.contract.exceptions import ContractError, DecodeError, EncodeError

_STRING: Final = 0
_BYTES: Final = 1
_INT: Final = 2
_LONG: Final = 3
_BOOLEAN: Final = 4
_ENUM: Final = 5
_ARRAY: Final = 6
_MAP: Final = 7
_NULL: Final = 8
_OPTIONAL: Final = 9  # ["null", T]

_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1


class UnsupportedSchemaError(ContractError):
    """The schema uses a type this module does not write (fastavro does)."""


class _Type:
    __slots__ = ("index", "inner", "kind", "name", "symbols")

    def __init__(
        self,
        kind: int,
        name: str,
        symbols: list[str] | None = None,
        inner: _Type | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.symbols: list[str] = symbols if symbols is not None else []
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        self.inner = inner


_PRIMITIVES: Final = {
    "string": _STRING,
    "bytes": _BYTES,
    "int": _INT,
    "long": _LONG,
    "boolean": _BOOLEAN,
    "null": _NULL,
}


def _parse(schema: Any, where: str) -> _Type:
    if isinstance(schema, str):
        kind = _PRIMITIVES.get(schema)
        if kind is None:
            raise UnsupportedSchemaError(f"{where}: type {schema!r}")
        return _Type(kind, where)
    if isinstance(schema, list):
        if len(schema) == 2 and schema[0] == "null" and schema[1] != "null":
            return _Type(_OPTIONAL, where, inner=_parse(schema[1], where))
        raise UnsupportedSchemaError(f"{where}: union {schema!r}")
    if isinstance(schema, dict):
        t = schema.get("type")
        if t == "enum":
            return _Type(_ENUM, where, symbols=list(schema["symbols"]))
        if t == "array":
            return _Type(_ARRAY, where, inner=_parse(schema["items"], where))
        if t == "map":
            return _Type(_MAP, where, inner=_parse(schema["values"], where))
        if isinstance(t, str) and t in _PRIMITIVES and "logicalType" not in schema:
            return _Type(_PRIMITIVES[t], where)
        raise UnsupportedSchemaError(f"{where}: type {schema!r}")
    raise UnsupportedSchemaError(f"{where}: type {schema!r}")


def _write_long(out: bytearray, n: int) -> None:
    z = (n << 1) ^ (n >> 63)
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _write(out: bytearray, t: _Type, value: object) -> None:
    kind = t.kind
    if kind == _STRING:
        if not isinstance(value, str):
            raise EncodeError(f"{t.name}: expected a string, got {type(value).__name__}")
        raw = value.encode()
        _write_long(out, len(raw))
        out += raw
    elif kind in (_LONG, _INT):
        if type(value) is not int:
            raise EncodeError(f"{t.name}: expected an int, got {type(value).__name__}")
        lo, hi = (_LONG_MIN, _LONG_MAX) if kind == _LONG else (_INT_MIN, _INT_MAX)
        if not lo <= value <= hi:
            raise EncodeError(f"{t.name}: {value} is out of range")
        _write_long(out, value)
    elif kind == _OPTIONAL:
        if value is None:
            out.append(0)
        else:
            out.append(2)  # union index 1, zigzag
            inner = t.inner
            assert inner is not None
            _write(out, inner, value)
    elif kind == _ENUM:
        i = t.index.get(value) if isinstance(value, str) else None
        if i is None:
            raise EncodeError(f"{t.name}: {value!r} is not one of {t.symbols}")
        _write_long(out, i)
    elif kind == _ARRAY:
        if not isinstance(value, (list, tuple)):
            raise EncodeError(f"{t.name}: expected a list, got {type(value).__name__}")
        inner = t.inner
        assert inner is not None
        if value:
            _write_long(out, len(value))
            for item in value:
                _write(out, inner, item)
        out.append(0)
    elif kind == _BYTES:
        if not isinstance(value, bytes):
            raise EncodeError(f"{t.name}: expected bytes, got {type(value).__name__}")
        _write_long(out, len(value))
        out += value
    elif kind == _MAP:
        if not isinstance(value, dict):
            raise EncodeError(f"{t.name}: expected a map, got {type(value).__name__}")
        inner = t.inner
        assert inner is not None
        if value:
            _write_long(out, len(value))
            for k, v in value.items():
                _write(out, _KEY, k)
                _write(out, inner, v)
        out.append(0)
    elif kind == _BOOLEAN:
        if type(value) is not bool:
            raise EncodeError(f"{t.name}: expected a boolean, got {type(value).__name__}")
        out.append(1 if value else 0)
    elif kind == _NULL:
        if value is not None:
            raise EncodeError(f"{t.name}: expected null, got {type(value).__name__}")
    else:
        raise EncodeError(f"{t.name}: unknown kind {kind}")


_KEY: Final = _Type(_STRING, "map key")


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def long(self) -> int:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise DecodeError("truncated record")
        b = data[pos]
        pos += 1
        z = b & 0x7F
        shift = 7
        while b & 0x80:
            if pos >= len(data) or shift > 63:
                raise DecodeError("truncated or overlong varint")
            b = data[pos]
            pos += 1
            z |= (b & 0x7F) << shift
            shift += 7
        self.pos = pos
        return (z >> 1) ^ -(z & 1)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise DecodeError("truncated record")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def raw(self) -> bytes:
        n = self.long()
        start = self.pos
        end = start + n
        if n < 0 or end > len(self.data):
            raise DecodeError("truncated string or bytes")
        self.pos = end
        return self.data[start:end]


def _read(cur: _Cursor, t: _Type) -> object:
    kind = t.kind
    if kind == _STRING:
        try:
            return cur.raw().decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{t.name}: invalid UTF-8") from exc
    if kind in (_LONG, _INT):
        value = cur.long()
        lo, hi = (_LONG_MIN, _LONG_MAX) if kind == _LONG else (_INT_MIN, _INT_MAX)
        if not lo <= value <= hi:
            raise DecodeError(f"{t.name}: {value} is out of range")
        return value
    if kind == _OPTIONAL:
        branch = cur.long()
        if branch == 0:
            return None
        if branch != 1:
            raise DecodeError(f"{t.name}: union branch {branch}")
        inner = t.inner
        assert inner is not None
        return _read(cur, inner)
    if kind == _ENUM:
        i = cur.long()
        if not 0 <= i < len(t.symbols):
            raise DecodeError(f"{t.name}: enum index {i}")
        return t.symbols[i]
    if kind == _ARRAY:
        inner = t.inner
        assert inner is not None
        items: list[object] = []
        n = cur.long()
        while n != 0:
            if n < 0:  # a block with its byte size
                n = -n
                cur.long()
            for _ in range(n):
                items.append(_read(cur, inner))
            n = cur.long()
        return items
    if kind == _BYTES:
        return cur.raw()
    if kind == _MAP:
        inner = t.inner
        assert inner is not None
        out: dict[str, object] = {}
        n = cur.long()
        while n != 0:
            if n < 0:
                n = -n
                cur.long()
            for _ in range(n):
                key = _read(cur, _KEY)
                assert isinstance(key, str)
                out[key] = _read(cur, inner)
            n = cur.long()
        return out
    if kind == _BOOLEAN:
        b = cur.byte()
        if b > 1:
            raise DecodeError(f"{t.name}: boolean byte {b}")
        return b == 1
    if kind == _NULL:
        return None
    raise DecodeError(f"{t.name}: unknown kind {kind}")


class FastRecord:
    """Writes and reads one record schema (a parsed, logical-type-stripped record)."""

    __slots__ = ("_defaults", "_fields", "_names")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        if schema.get("type") != "record":
            raise UnsupportedSchemaError("not a record schema")
        name = str(schema.get("name", "record"))
        self._fields = [
            (str(f["name"]), _parse(f["type"], f"{name}.{f['name']}")) for f in schema["fields"]
        ]
        self._names = [n for n, _ in self._fields]
        # A field missing from a datum takes its schema default, as fastavro does.
        self._defaults: dict[str, object] = {
            str(f["name"]): f["default"] for f in schema["fields"] if "default" in f
        }

    def encode_values(self, header: bytes, values: Sequence[object]) -> bytes:
        """``header`` and the record of one value per field, in the schema's order."""
        if len(values) != len(self._fields):
            raise EncodeError(f"{len(values)} values for {len(self._fields)} fields")
        out = bytearray(header)
        fields = self._fields
        for i in range(len(fields)):  # indexed: mypyc compiles it to a plain C loop
            _write(out, fields[i][1], values[i])
        return bytes(out)

    def encode(self, header: bytes, datum: Mapping[str, Any]) -> bytes:
        """``header`` and the record of a datum dict, as fastavro's ``schemaless_writer``."""
        values: list[object] = []
        for name in self._names:
            if name in datum:
                values.append(datum[name])
            elif name in self._defaults:
                values.append(self._defaults[name])
            else:
                raise EncodeError(f"missing field {name!r}")
        return self.encode_values(header, values)

    def decode_values(self, data: bytes, start: int) -> list[Any]:
        """The field values at ``data[start:]``, in the schema's order; the record must end
        where ``data`` ends."""
        cur = _Cursor(data, start)
        values: list[Any] = [_read(cur, t) for _, t in self._fields]
        if cur.pos != len(data):
            raise DecodeError("trailing bytes after the record")
        return values

    def decode(self, data: bytes, start: int) -> dict[str, Any]:
        """The datum dict at ``data[start:]``, as fastavro's ``schemaless_reader``."""
        # Built directly, not from decode_values: the worker decodes every Avro input here,
        # and the list and zip between cost a third of its speed.
        cur = _Cursor(data, start)
        datum: dict[str, Any] = {}
        for name, t in self._fields:
            datum[name] = _read(cur, t)
        if cur.pos != len(data):
            raise DecodeError("trailing bytes after the record")
        return datum

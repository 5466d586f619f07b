"""PostgreSQL's binary COPY format, written for a whole batch in one pass (compiled with mypyc).

psycopg's ``Copy.write_row`` dumps each value through its adapters, in Python for arrays: it
took a third of the sink's CPU. The sink's rows hold only six column types, so this module
encodes them itself, straight from the row tuples, and hands psycopg the finished stream
(``Copy.write``). Times travel as integer milliseconds since the Unix epoch and are written as
PostgreSQL's microseconds since 2000-01-01, so no ``datetime`` is built per row.

Format (PostgreSQL docs, "COPY", Binary Format): a signature and two int32 words, then per
row an int16 field count and per field an int32 length (-1 for NULL) and the value's
``typsend`` bytes, then an int16 -1.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Final

TEXT: Final = 0
INT8: Final = 1
INT4: Final = 2
TEXT_ARRAY: Final = 3
TIMESTAMPTZ_MS: Final = 4
BYTEA: Final = 5

_KINDS: Final = {
    "text": TEXT,
    "int8": INT8,
    "int4": INT4,
    "text[]": TEXT_ARRAY,
    "timestamptz": TIMESTAMPTZ_MS,
    "bytea": BYTEA,
}

SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER: Final = b"\xff\xff"
_TEXT_OID: Final = 25
# Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00 UTC).
_PG_EPOCH_US: Final = 946_684_800_000_000

_I16 = struct.Struct("!h").pack
_I32 = struct.Struct("!i").pack
_LEN_I64 = struct.Struct("!iq").pack
_LEN_I32 = struct.Struct("!ii").pack
# An array header: length, ndim 1, no NULLs, element type, dimension size, lower bound 1.
_ARRAY_1D = struct.Struct("!iiiiii").pack
_EMPTY_ARRAY: Final = struct.pack("!iiii", 12, 0, 0, _TEXT_OID)
_NULL: Final = b"\xff\xff\xff\xff"


class UnsupportedColumnTypeError(ValueError):
    """A column type this encoder does not write."""


def kinds_of(types: Sequence[str]) -> tuple[int, ...]:
    """The encoder's kind for each PostgreSQL column type name."""
    try:
        return tuple(_KINDS[t] for t in types)
    except KeyError as exc:
        raise UnsupportedColumnTypeError(f"no binary encoder for column type {exc}") from None


def encode(kinds: tuple[int, ...], rows: Iterable[Sequence[object]]) -> bytes:
    """The complete binary COPY stream (signature, rows, trailer) for ``rows``."""
    out = bytearray(SIGNATURE)
    count = _I16(len(kinds))
    width = len(kinds)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row has {len(row)} fields, the columns {width}")
        out += count
        for i in range(width):
            _field(out, kinds[i], row[i])
    out += TRAILER
    return bytes(out)


def _field(out: bytearray, kind: int, value: object) -> None:
    if value is None:
        out += _NULL
    elif kind == TEXT:
        assert isinstance(value, str)
        data = value.encode()
        out += _I32(len(data))
        out += data
    elif kind == INT8:
        assert isinstance(value, int)
        out += _LEN_I64(8, value)
    elif kind == TIMESTAMPTZ_MS:
        assert isinstance(value, int)
        out += _LEN_I64(8, value * 1000 - _PG_EPOCH_US)
    elif kind == INT4:
        assert isinstance(value, int)
        out += _LEN_I32(4, value)
    elif kind == TEXT_ARRAY:
        assert isinstance(value, (list, tuple))
        _text_array(out, value)
    else:
        assert isinstance(value, bytes)
        out += _I32(len(value))
        out += value


def _text_array(out: bytearray, items: list[str] | tuple[str, ...]) -> None:
    if not items:
        out += _EMPTY_ARRAY
        return
    encoded = [item.encode() for item in items]
    size = 20
    for data in encoded:
        size += 4 + len(data)
    out += _ARRAY_1D(size, 1, 0, _TEXT_OID, len(encoded), 1)
    for data in encoded:
        out += _I32(len(data))
        out += data

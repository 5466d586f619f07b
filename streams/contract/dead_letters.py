"""Bounded dead letters: what a rejected record becomes on ``recon.dlq`` (and in PostgreSQL).

A rejected input can be as large as the input topic allows. Copying it whole into a dead letter
would give a DLQ record beyond the producer's size limit, and a worker that crash-loops on one
bad record. So a dead letter carries only a prefix of the raw key and of the raw value (at most
:data:`MAX_DEAD_LETTER_BYTES` each), plus the true sizes and the SHA-256 of the full bytes, and
a detail of at most :data:`MAX_DEAD_LETTER_DETAIL` characters. Whatever the input, the encoded
dead letter stays under ~140 KB.

:func:`bounded_dead_letter` is the one way to build one; :func:`streams.contract.decode.
dead_letter` (validation rejections) and the worker's own dead letters go through it.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Final

from streams.contract.model import DeadLetter

#: Bytes of the raw key, and separately of the raw value, a dead letter keeps.
MAX_DEAD_LETTER_BYTES: Final = 64 * 1024
#: Characters of a dead letter's detail, cut marker included.
MAX_DEAD_LETTER_DETAIL: Final = 2000
#: Appended to a detail that was cut (formatted with the original length in characters).
DETAIL_CUT_MARKER: Final = " [... cut, {total} characters in all]"


def bounded_detail(detail: str, max_chars: int = MAX_DEAD_LETTER_DETAIL) -> str:
    """``detail`` as text any consumer can store: at most ``max_chars`` characters, NUL written
    as ``\\x00`` and lone surrogates as ``\\udXXX`` (PostgreSQL's UTF-8 text holds neither, and
    Avro strings must be UTF-8), cut with :data:`DETAIL_CUT_MARKER` when too long."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0, not {max_chars}")
    if "\x00" in detail:
        detail = detail.replace("\x00", "\\x00")
    if not detail.isascii():
        detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(detail) <= max_chars:
        return detail
    marker = DETAIL_CUT_MARKER.format(total=len(detail))
    if len(marker) >= max_chars:
        return detail[:max_chars]
    return detail[: max_chars - len(marker)] + marker


def bounded_dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
    *,
    max_bytes: int = MAX_DEAD_LETTER_BYTES,
    max_detail: int = MAX_DEAD_LETTER_DETAIL,
) -> DeadLetter:
    """The :class:`DeadLetter` of the record at ``topic``/``partition``/``offset``.

    ``key`` and ``value`` are the record's raw bytes (None when absent). The dead letter keeps
    their first ``max_bytes`` bytes each, their full sizes and the hex SHA-256 of the full bytes
    (size and digest are None when the key or value is None), and the detail bounded by
    :func:`bounded_detail`.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else bytes(key[:max_bytes]),
        value=None if value is None else bytes(value[:max_bytes]),
        reason=reason,
        detail=bounded_detail(detail, max_detail),
        key_size=None if key is None else len(key),
        value_size=None if value is None else len(value),
        key_sha256=None if key is None else sha256(key).hexdigest(),
        value_sha256=None if value is None else sha256(value).hexdigest(),
    )

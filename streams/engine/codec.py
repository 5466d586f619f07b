"""Value encodings of the engine's state records: orjson arrays (compact, no payloads).

Layouts (positional JSON arrays; sides and flows as the small codes of :mod:`.keys`):

* meta ``W``: ``[partition, ledger_max, payment_max, watermark, ledger_offset, payment_offset,
  swept]`` (times ``null`` until seen, offsets ``-1`` until seen; swept: nothing due below this
  event time is left unapplied, equal to the watermark unless a sweep paused on its budget).
  The 8-element form of earlier versions (two outbox offsets instead of swept) still decodes.
* buffered event ``B``: ``[side, event_id, reference, amount, currency, time, flow, offset]``
* group ``G``: ``[exception_id|null, deadline|null, payment_members, ledger_members]`` where a
  member is ``[event_id, amount, time]`` in applied order
* exception ``X``: ``[exception_record, [group_id_hex, ...]]``
* purge ``R`` of a match: ``[[side, event_id], ...]``; other purges: empty value

An exception record is the array of its fields in the order of its Avro schema
(:data:`streams.contract.records.EXCEPTION`; enums as their symbols), so a field added to the
contract is stored with no edit here; state written before it reads with the field's default.
Amounts are ints: orjson writes integers up to 64 bits exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from streams.contract.model import ExceptionRecord, Flow, InputEvent, Side
from streams.contract.records import EXCEPTION
from streams.engine.exceptions import CorruptStateError
from streams.engine.keys import CODE_FLOW, CODE_SIDE, FLOW_CODE, SIDE_CODE

Member = tuple[str, int, int]  # event_id, amount_minor, event_time_ms

_DECODE_ERRORS = (orjson.JSONDecodeError, IndexError, KeyError, TypeError, ValueError)


def _loads(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorruptStateError(f"undecodable {what} record") from exc


@dataclass(slots=True)
class Meta:
    partition: int
    max_time: list[int | None]  # by side code
    watermark: int | None
    offsets: list[int]  # highest applied input offset, by side code
    # Nothing due (buffered event, deadline, purge) below this time is left: the watermark,
    # unless the last sweep stopped on its step budget and resumes at the next call.
    swept: int | None
    # Groups with a deadline (waiting for their counterpart), for the open-groups metric;
    # None in state written before it was counted (the engine counts them once on load).
    open_groups: int | None = None


def encode_meta(meta: Meta) -> bytes:
    head = [meta.partition, *meta.max_time, meta.watermark, *meta.offsets, meta.swept]
    if meta.open_groups is None:
        return orjson.dumps(head)
    # 9 elements, the last reserved: 8 is the legacy form below.
    return orjson.dumps([*head, meta.open_groups, 0])


def decode_meta(raw: bytes) -> Meta:
    v = _loads(raw, "meta")
    try:
        # 8 elements: written before sweeps could pause (always complete: swept = watermark).
        swept = v[3] if len(v) == 8 else v[6]
        open_groups = int(v[7]) if len(v) == 9 else None
        return Meta(int(v[0]), [v[1], v[2]], v[3], [int(v[4]), int(v[5])], swept, open_groups)
    except _DECODE_ERRORS as exc:
        raise CorruptStateError(f"bad meta record {v!r}") from exc


@dataclass(frozen=True, slots=True)
class Buffered:
    side: Side
    event_id: str
    reference: str
    amount_minor: int
    currency: str
    event_time_ms: int
    flow: Flow
    offset: int


def encode_buffered(ev: Buffered | InputEvent) -> bytes:
    """A buffered event: the fields of an input event that matching reads (an InputEvent is
    stored as it is, without a copy into a Buffered)."""
    return orjson.dumps(
        [
            SIDE_CODE[ev.side],
            ev.event_id,
            ev.reference,
            ev.amount_minor,
            ev.currency,
            ev.event_time_ms,
            FLOW_CODE[ev.flow],
            ev.offset,
        ]
    )


def decode_buffered(raw: bytes) -> Buffered:
    v = _loads(raw, "buffer")
    try:
        return Buffered(CODE_SIDE[v[0]], v[1], v[2], v[3], v[4], v[5], CODE_FLOW[v[6]], v[7])
    except _DECODE_ERRORS as exc:
        raise CorruptStateError(f"bad buffer record {v!r}") from exc


@dataclass(slots=True)
class Group:
    gid: bytes
    exception_id: str | None  # set while raised
    deadline: int | None  # the deadline as indexed under ``D`` (open groups only)
    payments: list[Member]
    ledgers: list[Member]

    def members(self, side: Side) -> list[Member]:
        return self.payments if side is Side.PAYMENT else self.ledgers


def encode_group(g: Group) -> bytes:
    return orjson.dumps([g.exception_id, g.deadline, g.payments, g.ledgers])


def decode_group(gid: bytes, raw: bytes) -> Group:
    v = _loads(raw, "group")
    try:
        return Group(
            gid,
            v[0],
            v[1],
            [(m[0], m[1], m[2]) for m in v[2]],
            [(m[0], m[1], m[2]) for m in v[3]],
        )
    except _DECODE_ERRORS as exc:
        raise CorruptStateError(f"bad group record {v!r}") from exc


def exception_to_list(r: ExceptionRecord) -> list[Any]:
    """An exception as its fields in the schema's order (records.EXCEPTION)."""
    return list(EXCEPTION.values(r))


def exception_from_list(v: list[Any]) -> ExceptionRecord:
    return EXCEPTION.from_values(v)


def encode_exception(record: ExceptionRecord, gids: Iterable[bytes]) -> bytes:
    return orjson.dumps([exception_to_list(record), [gid.hex() for gid in gids]])


def decode_exception(raw: bytes) -> tuple[ExceptionRecord, list[bytes]]:
    v = _loads(raw, "exception")
    try:
        return exception_from_list(v[0]), [bytes.fromhex(h) for h in v[1]]
    except _DECODE_ERRORS as exc:
        raise CorruptStateError(f"bad exception record {v!r}") from exc


def encode_purge_members(members: Iterable[tuple[int, str]]) -> bytes:
    return orjson.dumps([list(m) for m in members])


def decode_purge_members(raw: bytes) -> list[tuple[int, str]]:
    v = _loads(raw, "purge")
    try:
        return [(int(m[0]), str(m[1])) for m in v]
    except _DECODE_ERRORS as exc:
        raise CorruptStateError("bad purge record") from exc

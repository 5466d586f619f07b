"""The read views: what ``lookup`` and ``snapshot`` return, read-only copies of a partition's
state, and the two reads that build them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.contract.model import ExceptionRecord, Flow, Side
from streams.engine import codec, keys
from streams.engine.codec import Buffered, Group, Member
from streams.engine.exceptions import PartitionMismatchError
from streams.state.base import KeyValueStore, prefix_end

_PAY = keys.SIDE_CODE[Side.PAYMENT]
_LED = keys.SIDE_CODE[Side.LEDGER]
_BUFFER_END = prefix_end(keys.BUFFER)
_GROUP_END = prefix_end(keys.GROUP)
_EXCEPTION_END = prefix_end(keys.EXCEPTION)


class GroupStatus(StrEnum):
    OPEN = "open"
    RAISED = "raised"


@dataclass(frozen=True, slots=True)
class MemberView:
    event_id: str
    amount_minor: int
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class GroupView:
    """One (reference, flow, currency) group; members in the order they were applied."""

    reference: str
    flow: Flow
    currency: str
    status: GroupStatus
    deadline_ms: int | None  # open groups only
    exception_id: str | None  # raised groups only
    payment_events: tuple[MemberView, ...]
    ledger_events: tuple[MemberView, ...]


@dataclass(frozen=True, slots=True)
class BufferedView:
    side: Side
    event_id: str
    reference: str
    flow: Flow
    currency: str
    amount_minor: int
    event_time_ms: int
    offset: int


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """Everything a partition holds that is not yet a final output."""

    partition: int | None
    watermark_ms: int | None
    payment_max_ms: int | None
    ledger_max_ms: int | None
    payment_offset: int
    ledger_offset: int
    buffered: tuple[BufferedView, ...]
    groups: tuple[GroupView, ...]
    raised_exceptions: tuple[ExceptionRecord, ...]  # still open, with their groups in state


def lookup(store: KeyValueStore, reference: str) -> list[GroupView]:
    """Open and raised groups of one reference, by (flow, currency)."""
    prefix = keys.GROUP + keys.reference_prefix(reference)
    return [
        _group_view(codec.decode_group(k[1:], v)) for k, v in store.scan(prefix, prefix_end(prefix))
    ]


def snapshot(store: KeyValueStore, partition: int) -> EngineSnapshot:
    raw = store.get(keys.META)
    meta = codec.decode_meta(raw) if raw is not None else None
    if meta is not None and meta.partition != partition:
        raise PartitionMismatchError(f"store holds partition {meta.partition}, not {partition}")
    buffered = tuple(
        _buffered_view(codec.decode_buffered(v)) for _, v in store.scan(keys.BUFFER, _BUFFER_END)
    )
    groups = tuple(
        _group_view(codec.decode_group(k[1:], v)) for k, v in store.scan(keys.GROUP, _GROUP_END)
    )
    raised = tuple(
        sorted(
            (codec.decode_exception(v)[0] for _, v in store.scan(keys.EXCEPTION, _EXCEPTION_END)),
            key=lambda r: r.exception_id,
        )
    )
    return EngineSnapshot(
        partition=meta.partition if meta else None,
        watermark_ms=meta.watermark if meta else None,
        payment_max_ms=meta.max_time[_PAY] if meta else None,
        ledger_max_ms=meta.max_time[_LED] if meta else None,
        payment_offset=meta.offsets[_PAY] if meta else -1,
        ledger_offset=meta.offsets[_LED] if meta else -1,
        buffered=buffered,
        groups=groups,
        raised_exceptions=raised,
    )


def _members(ms: list[Member]) -> tuple[MemberView, ...]:
    return tuple(MemberView(m[0], m[1], m[2]) for m in ms)


def _group_view(g: Group) -> GroupView:
    reference, flow, currency = keys.parse_group_id(g.gid)
    return GroupView(
        reference=reference,
        flow=flow,
        currency=currency,
        status=GroupStatus.RAISED if g.exception_id is not None else GroupStatus.OPEN,
        deadline_ms=g.deadline,
        exception_id=g.exception_id,
        payment_events=_members(g.payments),
        ledger_events=_members(g.ledgers),
    )


def _buffered_view(ev: Buffered) -> BufferedView:
    return BufferedView(
        ev.side, ev.event_id, ev.reference, ev.flow, ev.currency, ev.amount_minor,
        ev.event_time_ms, ev.offset,
    )  # fmt: skip

"""The read views: what ``lookup`` and ``snapshot`` return, read-only copies of a partition's
state."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.contract.model import ExceptionRecord, Flow, Side


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

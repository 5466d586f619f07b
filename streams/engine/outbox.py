"""The outbox: what one engine call emits, the records to send and what happened to its inputs.

(Not the ``O`` records of :mod:`streams.engine.keys`, the per-offset outbox in the state of
versions before each batch became one Kafka transaction.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.contract.model import ExceptionRecord, MatchRecord


@dataclass(slots=True)
class EngineOutput:
    """Records to send, in emission order per list, and what happened to the inputs."""

    matches: list[MatchRecord] = field(default_factory=list)
    exceptions: list[ExceptionRecord] = field(default_factory=list)
    events: int = 0  # input events seen (not counting redeliveries by offset)
    heartbeats: int = 0
    buffered: int = 0  # events put in the event-time buffer
    released: int = 0  # buffered events applied because the watermark passed them
    late_events: int = 0  # events already behind the watermark, applied at once
    duplicates_dropped: int = 0  # same (side, event_id), same content hash
    conflicts: int = 0  # same (side, event_id), different content hash
    replays: int = 0  # inputs at or below the applied offset (Kafka redeliveries): skipped
    deadlines_fired: int = 0
    purged: int = 0  # retention purges carried out
    parked: int = 0  # events their group could not take (AMOUNT_OVERFLOW, GROUP_LIMIT)
    # Not counters: how many of the call's items were taken, and whether the sweep stopped on
    # its step budget (the next call, with the items not taken, resumes it).
    consumed: int = 0
    paused: bool = False

    def extend(self, other: EngineOutput) -> None:
        self.matches.extend(other.matches)
        self.exceptions.extend(other.exceptions)
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.consumed += other.consumed
        self.paused = other.paused


COUNTERS = (
    "events",
    "heartbeats",
    "buffered",
    "released",
    "late_events",
    "duplicates_dropped",
    "conflicts",
    "replays",
    "deadlines_fired",
    "purged",
    "parked",
)

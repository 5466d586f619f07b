"""The pure matching engine: no Kafka, no Faust; state in a :class:`KeyValueStore`."""

from streams.engine.config import MatchConfig
from streams.engine.engine import Item, MatchingEngine
from streams.engine.exceptions import (
    CorruptStateError,
    EngineConfigError,
    EngineError,
    InvalidInputError,
    PartitionMismatchError,
)
from streams.engine.views import (
    BufferedView,
    EngineOutput,
    EngineSnapshot,
    GroupStatus,
    GroupView,
    MemberView,
)

__all__ = [
    "BufferedView",
    "CorruptStateError",
    "EngineConfigError",
    "EngineError",
    "EngineOutput",
    "EngineSnapshot",
    "GroupStatus",
    "GroupView",
    "InvalidInputError",
    "Item",
    "MatchConfig",
    "MatchingEngine",
    "MemberView",
    "PartitionMismatchError",
]

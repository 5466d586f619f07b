"""Ordered byte key-value stores for the matching engine's state."""

from streams.state.base import KeyValueStore, prefix_end
from streams.state.exceptions import StateError, StoreClosedError
from streams.state.memory import MemoryStore
from streams.state.transaction import PartitionTransaction

__all__ = [
    "KeyValueStore",
    "MemoryStore",
    "PartitionTransaction",
    "StateError",
    "StoreClosedError",
    "prefix_end",
]

"""Ordered byte key-value stores for the matching engine's state."""

from streams.state.base import KeyValueStore, prefix_end
from streams.state.batching import BatchingStore
from streams.state.exceptions import StateError, StoreClosedError
from streams.state.memory import MemoryStore

__all__ = [
    "BatchingStore",
    "KeyValueStore",
    "MemoryStore",
    "StateError",
    "StoreClosedError",
    "prefix_end",
]

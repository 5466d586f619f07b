"""The pure matching engine: no Kafka, no Faust; state in a :class:`KeyValueStore`.

What an adapter must know:

* One store per input partition (the same partition number of both topics); keys carry no
  partition, the meta record does, and a store used for another partition raises
  :class:`PartitionMismatchError`. Stores must order keys bytewise (rocksdict: raw mode).
* Pass every record, events and heartbeats, with its source offset in its own topic partition,
  in consumption order. Offsets at or below the highest applied one of that side are taken as
  redeliveries and skipped: persist a call's state changes and send its outputs atomically
  (the worker does both in one Kafka transaction), so a redelivered input's outputs are out.
* ``on_batch`` defers the watermark sweep to the end of the call. With a ``budget`` the sweep
  takes at most that many steps and the call may return ``paused``: persist it, then call again
  with the items not ``consumed`` (or none) until it does not pause.
* With a :class:`~streams.state.transaction.PartitionTransaction`, prepare it before sending the
  outputs.
* An engine instance keeps only its settings (each call's cursors live in a session object
  dropped when the call returns): calls on different partitions' stores may share it.
"""

from streams.engine.config import MatchConfig
from streams.engine.engine import MatchingEngine
from streams.engine.exceptions import (
    CorruptStateError,
    EngineConfigError,
    EngineError,
    InvalidInputError,
    PartitionMismatchError,
)
from streams.engine.outbox import EngineOutput
from streams.engine.read_views import (
    BufferedView,
    EngineSnapshot,
    GroupStatus,
    GroupView,
    MemberView,
)
from streams.engine.session import Item

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

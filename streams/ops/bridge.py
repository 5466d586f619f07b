"""Copy the inputs of one partition layout into another, re-partitioned by murmur2.

The scaling bridge (docs/scaling.md): every record of the old input partitions goes to the
new input topic's partition ``murmur2(key) % N``, as a producer on the new layout would send
it. A reference's records all come from one old partition, in offset order, so they reach
their new partition in the same order. Records without a key keep their old partition
number modulo N (bad records, which the new generation dead-letters as the old one did).

A heartbeat says "this input partition has reached time T". On the new layout it would speak
for records of other old partitions too, some of which the bridge may not have copied yet, so
it is sent to every new partition with T clamped to the least time every old partition of that
input has reached: it never makes a record late that was not late before.

Copying is at least once (offsets committed after the copies are acknowledged); a record
copied twice is the same event twice, which the engine's duplicate index drops.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from streams.contract.decode import InputDecoder
from streams.contract.model import Heartbeat, InputEvent, Side
from streams.ops.exceptions import OpsError
from streams.settings import KafkaSettings
from streams.worker.partitioning import partition_for


@dataclass(slots=True)
class BridgeStats:
    copied: int = 0
    heartbeats: int = 0


class Bridge:
    """Copies ``routes`` (old topic -> (new topic, side)) until stopped."""

    def __init__(
        self,
        kafka: KafkaSettings,
        routes: Mapping[str, tuple[str, Side]],
        old_partitions: int,
        new_partitions: int,
        group_id: str,
        decoder: InputDecoder | None = None,
    ) -> None:
        """``decoder``: the worker's (streams.worker.decoder.input_decoder), so that heartbeats
        in the Confluent format are told from events too."""
        self._routes = dict(routes)
        self._old = old_partitions
        self._new = new_partitions
        self._decoder = decoder or InputDecoder()
        self._consumer = Consumer(
            {
                **kafka.confluent_config(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        self._producer = Producer(
            {**kafka.confluent_config(), "enable.idempotence": True, "linger.ms": 5}
        )
        # Per input side and old partition: the greatest event time copied.
        self._reached: dict[Side, dict[int, int]] = {Side.PAYMENT: {}, Side.LEDGER: {}}
        self.stats = BridgeStats()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported to the caller, which stops the scale
            self.error = exc
        finally:
            self._consumer.close()

    def _run(self) -> None:
        tps = [TopicPartition(t, p) for t in self._routes for p in range(self._old)]
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in self._consumer.committed(tps, timeout=30)
        }
        self._consumer.assign(
            [
                TopicPartition(t, p, o if o >= 0 else OFFSET_BEGINNING)
                for (t, p), o in committed.items()
            ]
        )
        while not self.stop.is_set():
            msgs = self._consumer.consume(num_messages=2000, timeout=0.2)
            if not msgs:
                continue
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise OpsError(f"scale bridge: {err}")
                self._copy(msg)
            if self._producer.flush(60) > 0:
                raise OpsError("scale bridge: copies not acknowledged")
            self._consumer.commit(asynchronous=False)

    def _copy(self, msg: Message) -> None:
        topic, partition = str(msg.topic()), int(msg.partition() or 0)
        key, value = msg.key(), msg.value()
        new_topic, side = self._routes[topic]
        item = self._decoder.decode(side, key, value, 0)
        if isinstance(item, Heartbeat):
            self._reach(side, partition, item.event_time_ms)
            reached = self._reached[side]
            if len(reached) < self._old:
                return  # an old partition has copied nothing yet: no time is safe to pass on
            upto = min(reached.values())
            for k in range(self._new):
                self._producer.produce(
                    new_topic, value=orjson.dumps({"event_time": upto}), partition=k
                )
            self.stats.heartbeats += 1
            return
        if isinstance(item, InputEvent):
            self._reach(side, partition, item.event_time_ms)
        target = partition_for(key, self._new) if key is not None else partition % self._new
        self._producer.produce(new_topic, value=value, key=key, partition=target)
        self.stats.copied += 1

    def _reach(self, side: Side, partition: int, t: int) -> None:
        reached = self._reached[side]
        reached[partition] = max(reached.get(partition, t), t)

"""Run a simulation through the worker's batch processor in-process, over memory stores.

The same code path as the Faust worker minus Kafka: useful to check the ground truth without a
broker, and as the baseline of the worker benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.contract.model import DeadLetter, ExceptionRecord, MatchRecord, Side
from streams.engine.config import MatchConfig
from streams.engine.engine import MatchingEngine
from streams.settings import TopicNames
from streams.simulate.encoding import Format, encode_value, heartbeat
from streams.simulate.scenarios import Simulation
from streams.state.memory import MemoryStore
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, RawRecord


@dataclass(slots=True)
class LocalRun:
    matches: list[MatchRecord] = field(default_factory=list)
    exceptions: list[ExceptionRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    stores: dict[int, MemoryStore] = field(default_factory=dict)


def kafka_records(
    sim: Simulation, partitions: int, fmt: Format, topics: TopicNames
) -> list[RawRecord]:
    """What the two input topics hold after the simulation is produced (murmur2 partitioning),
    flush heartbeats last on every partition of both inputs."""
    names = {Side.PAYMENT: topics.payments, Side.LEDGER: topics.ledger}
    offsets: dict[tuple[str, int], int] = {}
    out: list[RawRecord] = []

    def add(topic: str, partition: int, key: bytes | None, value: bytes) -> None:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        out.append(RawRecord(topic, partition, offset, key, value))

    for r in sim.records:
        partition = partition_for(r.key or b"", partitions)
        add(names[r.side], partition, r.key, encode_value(r, fmt))
    for partition in range(partitions):
        for topic in names.values():
            add(topic, partition, None, heartbeat(sim.flush_time_ms, fmt))
    return out


def run_local(
    sim: Simulation,
    config: MatchConfig,
    *,
    partitions: int = 3,
    fmt: Format = "json",
    batch: int = 500,
    topics: TopicNames | None = None,
) -> LocalRun:
    topics = topics or TopicNames()
    run = LocalRun()
    processor = BatchProcessor(
        MatchingEngine(config),
        topics,
        partitions,
        lambda p: run.stores.setdefault(p, MemoryStore()),
    )
    records = kafka_records(sim, partitions, fmt, topics)
    for start in range(0, len(records), batch):
        result = processor.process(records[start : start + batch])
        run.matches.extend(result.matches)
        run.exceptions.extend(result.exceptions)
        run.dead_letters.extend(result.dead_letters)
        for name, value in result.counters.items():
            run.counters[name] = run.counters.get(name, 0) + value
    return run

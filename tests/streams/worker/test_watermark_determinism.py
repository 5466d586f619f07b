"""Event-time determinism through the BatchProcessor: how the two input topics interleave and
how the records are cut into batches must not change the set of outputs.

Each topic's own order (and so every topic partition's offset order) is kept; only the
merge of the two topics and the batch size vary.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from streams.contract.model import DeadLetter, ExceptionRecord, MatchRecord
from streams.engine.config import HOUR_MS, MatchConfig
from streams.engine.engine import MatchingEngine
from streams.settings import TopicNames
from streams.simulate.encoding import Format
from streams.simulate.local import kafka_records
from streams.simulate.scenarios import simulate
from streams.simulate.truth import check, truth_of
from streams.state.memory import MemoryStore
from streams.worker.processor import BatchProcessor, RawRecord

PARTITIONS = 3
TOPICS = TopicNames()
CONFIG = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)

Outputs = tuple[Counter[MatchRecord], Counter[ExceptionRecord], Counter[DeadLetter]]
Interleave = Callable[[list[RawRecord], list[RawRecord]], list[RawRecord]]


def run(records: list[RawRecord], batch: int) -> Outputs:
    stores: dict[int, MemoryStore] = {}
    processor = BatchProcessor(
        MatchingEngine(CONFIG), TOPICS, PARTITIONS, lambda p: stores.setdefault(p, MemoryStore())
    )
    matches: Counter[MatchRecord] = Counter()
    exceptions: Counter[ExceptionRecord] = Counter()
    dead: Counter[DeadLetter] = Counter()
    for start in range(0, len(records), batch):
        result = processor.process(records[start : start + batch])
        matches.update(result.matches)
        exceptions.update(result.exceptions)
        dead.update(result.dead_letters)
    return matches, exceptions, dead


def payments_first(pays: list[RawRecord], leds: list[RawRecord]) -> list[RawRecord]:
    return pays + leds


def ledger_first(pays: list[RawRecord], leds: list[RawRecord]) -> list[RawRecord]:
    return leds + pays


def alternate(pays: list[RawRecord], leds: list[RawRecord]) -> list[RawRecord]:
    out: list[RawRecord] = []
    for i in range(max(len(pays), len(leds))):
        out.extend(pays[i : i + 1])
        out.extend(leds[i : i + 1])
    return out


def random_merge(seed: int) -> Interleave:
    def merge(pays: list[RawRecord], leds: list[RawRecord]) -> list[RawRecord]:
        rng = random.Random(seed)
        out: list[RawRecord] = []
        i = j = 0
        while i < len(pays) or j < len(leds):
            take_pay = j >= len(leds) or (i < len(pays) and rng.random() < 0.5)
            if take_pay:
                out.append(pays[i])
                i += 1
            else:
                out.append(leds[j])
                j += 1
        return out

    return merge


def split_topics(records: list[RawRecord]) -> tuple[list[RawRecord], list[RawRecord]]:
    pays = [r for r in records if r.topic == TOPICS.payments]
    leds = [r for r in records if r.topic == TOPICS.ledger]
    assert len(pays) + len(leds) == len(records)
    return pays, leds


def per_topic_partition_order(records: list[RawRecord]) -> dict[tuple[str, int], list[int]]:
    order: dict[tuple[str, int], list[int]] = {}
    for r in records:
        order.setdefault((r.topic, r.partition), []).append(r.offset)
    return order


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_interleaving_and_batch_size_do_not_change_outputs(fmt: Format) -> None:
    sim = simulate(240, seed=5, config=CONFIG)
    records = kafka_records(sim, PARTITIONS, fmt, TOPICS)
    pays, leds = split_topics(records)

    baseline = run(records, batch=500)
    matches = list(baseline[0].elements())
    exceptions = list(baseline[1].elements())
    dead = list(baseline[2].elements())
    verdict = check(truth_of(sim), matches, exceptions, dead)
    assert verdict.ok, verdict.problems
    assert verdict.duplicate_records == 0
    # Every kind of output is exercised.
    assert matches
    assert exceptions
    assert dead

    variants: list[tuple[Interleave, int]] = [
        (payments_first, 7),
        (ledger_first, len(records)),  # one batch
        (alternate, 1),
        (random_merge(1), 13),
        (random_merge(2), 64),
    ]
    for interleave, batch in variants:
        reordered = interleave(pays, leds)
        assert Counter(reordered) == Counter(records)  # the same records...
        assert reordered != records  # ...in another order across the two topics
        assert per_topic_partition_order(reordered) == per_topic_partition_order(records)
        got = run(reordered, batch)
        name = getattr(interleave, "__name__", "?")
        assert got[0] == baseline[0], f"matches differ for {name}, batch {batch}"
        assert got[1] == baseline[1], f"exceptions differ for {name}, batch {batch}"
        assert got[2] == baseline[2], f"dead letters differ for {name}, batch {batch}"

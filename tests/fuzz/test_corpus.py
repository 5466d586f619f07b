"""The whole default fuzz corpus through the worker's own batch path, in-process (no broker).

Every item goes through :class:`~streams.worker.processor.BatchProcessor` (the decoder with a
schema registry, the admission checks, the engine over memory stores), in batches as the
worker takes them, with a Kafka timestamp on every record. Each bad item must come out as
exactly one dead letter with the reason the corpus built it for; each accepted item as none;
and the outputs must be the corpus' expected matches and exceptions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from streams import native
from streams.contract.codec import decode_dead_letter, encode_dead_letter
from streams.contract.decode import InputDecoder, unstorable_text
from streams.contract.model import DeadLetter, ExceptionRecord, MatchRecord, Side
from streams.engine.engine import MatchingEngine
from streams.settings import TopicNames
from streams.simulate.truth import check, truth_of
from streams.state.memory import MemoryStore
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, RawRecord
from streams.worker.settings import WorkerSettings
from tests.ci_support import missing
from tests.fuzz.corpus import (
    ACCEPTED,
    DEFAULT_COUNT,
    DEFAULT_SEED,
    LARGE_PRODUCER_LIMIT,
    PRODUCER_LIMIT,
    REFUSED,
    REGISTRY_SCHEMAS,
    TOPIC_LIMIT,
    Corpus,
    Item,
    categories,
    generate,
)
from tests.fuzz.run import FUZZ_MATCH
from tests.registry_stub import RegistryStub

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
TOPICS = TopicNames()
BATCH = 500

#: The brief's list (issue 13): the corpus has a category for each.
REQUIRED_CATEGORIES = {
    "malformed_json",
    "json_not_object",
    "wrong_type",
    "null_field",
    "missing_field",
    "tombstone",
    "null_key",
    "invalid_utf8",
    "amount",
    "sum_overflow",
    "currency",
    "size_limit",
    "deep_nesting",
    "event_time",
    "event_id",
    "reference",
    "garbage_headers",
    "avro_single_object",
    "confluent",
    "heartbeat_extra",
}


def documented_reasons() -> set[str]:
    """The reasons of the README's dead-letter table."""
    text = (ROOT / "README.md").read_text()
    table = text.split("Dead-letter reasons:", 1)[1].split("\n\n", 2)[1]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate(DEFAULT_COUNT, DEFAULT_SEED)


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryStub]:
    stub = RegistryStub()
    stub.schemas.update(REGISTRY_SCHEMAS)
    yield stub
    stub.close()


def _partition(item: Item, index: int) -> int:
    if item.key is None:
        return index % PARTITIONS  # a producer spreads null keys over the partitions
    right = partition_for(item.key, PARTITIONS)
    return (right + 1) % PARTITIONS if item.wrong_partition else right


def test_corpus_has_every_category_and_reason(corpus: Corpus) -> None:
    assert len(corpus.bad) >= 10_000
    assert set(categories()) >= REQUIRED_CATEGORIES
    assert set(corpus.by_category()) == set(categories())
    reasons = documented_reasons()
    expected = set(corpus.by_expected())
    # Every outcome is a documented reason, ACCEPTED or REFUSED, and every reason of the
    # table is there but those no input alone causes: PROCESSING_ERROR (the engine failing on
    # a valid record), UNKNOWN_TOPIC (a topic the worker does not read) and SINK_REJECTED
    # (PostgreSQL refusing an output).
    assert expected - {ACCEPTED, REFUSED} <= reasons
    assert reasons - expected == {"PROCESSING_ERROR", "UNKNOWN_TOPIC", "SINK_REJECTED"}
    assert {ACCEPTED, REFUSED} <= expected
    # Deterministic from the seed.
    again = generate(DEFAULT_COUNT, DEFAULT_SEED)
    assert [(i.key, i.value, i.headers, i.expected) for i in again.items] == [
        (i.key, i.value, i.headers, i.expected) for i in corpus.items
    ]


def test_small_corpus_covers_every_category() -> None:
    small = generate(40, 7)
    assert len(small.bad) == 40
    assert {i.category for i in small.bad} == {c for c in categories() if c != "sum_overflow"}
    assert {i.category for i in small.items} == set(categories())


def test_every_item_gets_its_expected_outcome(corpus: Corpus, registry: RegistryStub) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    decoder = InputDecoder(schema_registry_client=SchemaRegistryClient({"url": registry.url}))
    stores = {p: MemoryStore() for p in range(PARTITIONS)}
    processor = BatchProcessor(
        MatchingEngine(FUZZ_MATCH),
        TOPICS,
        PARTITIONS,
        stores.__getitem__,
        decoder,
        max_event_time_ahead_ms=WorkerSettings().max_event_time_ahead_ms,
    )
    flush_ms = (
        corpus.last_event_ms + FUZZ_MATCH.match_window_ms + FUZZ_MATCH.allowed_lateness_ms + 60_000
    )
    stamp = flush_ms + 86_400_000  # the Kafka timestamp: after every valid event time
    offsets: Counter[tuple[str, int]] = Counter()
    records: list[RawRecord] = []
    item_at: dict[tuple[str, int, int], Item] = {}
    topic = {Side.PAYMENT: TOPICS.payments, Side.LEDGER: TOPICS.ledger}
    for n, item in enumerate(i for i in corpus.items if i.reaches_worker):
        tp = (topic[item.side], _partition(item, n))
        record = RawRecord(*tp, offsets[tp], item.key, item.value, stamp)
        offsets[tp] += 1
        records.append(record)
        item_at[(record.topic, record.partition, record.offset)] = item
    for partition in range(PARTITIONS):
        for name in topic.values():
            value = b'{"event_time": %d}' % flush_ms
            records.append(
                RawRecord(name, partition, offsets[(name, partition)], None, value, stamp)
            )

    matches: list[MatchRecord] = []
    exceptions: list[ExceptionRecord] = []
    dead: list[DeadLetter] = []
    for start in range(0, len(records), BATCH):
        result = processor.process(records[start : start + BATCH])
        matches += result.matches
        exceptions += result.exceptions
        dead += result.dead_letters
        assert result.isolated == 0

    got: dict[tuple[str, int, int], list[str]] = {}
    for d in dead:
        got.setdefault((d.source_topic, d.partition, d.offset), []).append(d.reason)
        # Never the decoder's catch-all: that would be a crash hidden as a dead letter.
        assert not d.detail.startswith("unexpected decoding error"), d.detail
        assert unstorable_text(d.detail) is None
        assert decode_dead_letter(encode_dead_letter(d)) == d
    wrong = []
    for position, item in item_at.items():
        want = [] if item.expected == ACCEPTED else [item.expected]
        if got.pop(position, []) != want:
            wrong.append(f"{item.category}/{item.case} #{item.index}: want {want}")
    assert wrong == []
    assert got == {}  # no dead letter of a heartbeat or of anything else

    verdict = check(truth_of(corpus.simulation()), matches, exceptions, dead)
    assert verdict.problems == []
    assert verdict.matches == len(corpus.matches) > 0
    assert verdict.exceptions == len(corpus.exceptions) > 0


def test_refused_items_are_over_the_limits(corpus: Corpus) -> None:
    refused = [i for i in corpus.items if i.expected == REFUSED]
    assert {i.producer for i in refused} == {"default", "large"}
    # The default producer refuses its own at produce(), before any broker is involved.
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "partitioner": "murmur2_random"})
    for item in refused:
        if item.producer == "default":
            with pytest.raises(KafkaException) as caught:
                producer.produce("payments", item.value, key=item.key)
            assert caught.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
        else:
            # The broker refuses it (tests/fuzz/test_pipeline.py): over the topic's limit.
            assert TOPIC_LIMIT < item.size < LARGE_PRODUCER_LIMIT
    # Everything else that was sent fits what was sent with.
    for item in corpus.items:
        if item.expected != REFUSED:
            limit = PRODUCER_LIMIT if item.producer == "default" else TOPIC_LIMIT
            assert item.size < limit, (item.category, item.case, item.size)


# Every corpus item through the worker's batch path in a fresh interpreter (whether a module is
# compiled is decided at import): the dead letters and outputs, as bytes.
_SCRIPT = """
import hashlib, json
from streams import native
from streams.contract.decode import InputDecoder
from streams.engine.engine import MatchingEngine
from streams.settings import TopicNames
from streams.state.memory import MemoryStore
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, RawRecord
from tests.fuzz.corpus import FakeRegistryClient, generate
from tests.fuzz.run import FUZZ_MATCH

corpus = generate(1000, 5)
topics = TopicNames()
stores = {p: MemoryStore() for p in range(3)}
processor = BatchProcessor(
    MatchingEngine(FUZZ_MATCH), topics, 3, stores.__getitem__,
    InputDecoder(schema_registry_client=FakeRegistryClient()), max_event_time_ahead_ms=3_600_000,
)
digest = hashlib.sha256()
records = []
for n, item in enumerate(i for i in corpus.items if i.reaches_worker):
    p = n % 3 if item.key is None else partition_for(item.key, 3)
    topic = topics.payments if item.topic == "payments" else topics.ledger
    records.append(RawRecord(topic, p, n, item.key, item.value, corpus.last_event_ms + 10**9))
for start in range(0, len(records), 100):
    for out in processor.process(records[start : start + 100]).outgoing:
        digest.update(repr((out.topic, out.key, out.value, out.partition)).encode())
print(json.dumps({"digest": digest.hexdigest(), "records": len(records),
                  "compiled": sorted(n for n, c in native.compiled().items() if c)}))
"""


def _run_script(pure: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "RECON_PURE_PYTHON"}
    if pure:
        env["RECON_PURE_PYTHON"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_compiled_and_pure_python_dead_letter_the_corpus_alike() -> None:
    """The compiled worker once gave BAD_TYPE where the Python sources gave BAD_AMOUNT."""
    if not native.built():
        missing("the compiled core is not built", "build it with `make native`")
    compiled, pure = _run_script(pure=False), _run_script(pure=True)
    assert compiled["compiled"] == sorted(native.module_names())
    assert pure["compiled"] == []
    assert compiled["records"] == pure["records"]
    assert compiled["digest"] == pure["digest"]

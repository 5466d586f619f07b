"""BatchProcessor over MemoryStores: no broker, no database.

Every expected output below is worked out by hand from the rules: the watermark is
``min(payment max, ledger max) - allowed lateness`` (5 min by default), buffered events are
released once the watermark passes them, and a redelivered offset is skipped (its outputs went
out in the transaction that applied it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from hashlib import blake2b, sha256

import orjson
import pytest

from streams.contract.model import DeadLetter, Flow, MatchRecord, Rule, Side
from streams.engine import keys
from streams.engine.config import MatchConfig
from streams.engine.engine import MatchingEngine
from streams.engine.read_views import GroupStatus, GroupView, MemberView
from streams.settings import TopicNames
from streams.state.memory import MemoryStore
from streams.worker.partitioning import partition_for
from streams.worker.processor import BatchProcessor, BatchResult, RawRecord

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
HOUR = 60 * MIN
LATENESS = 5 * MIN  # MatchConfig() default
WINDOW = 48 * HOUR  # MatchConfig() default
PARTITIONS = 3
TOPICS = TopicNames()
PAY = TOPICS.payments
LED = TOPICS.ledger


# ----------------------------------------------------------------------------- helpers


def refs_on(partition: int, n: int, prefix: str = "ORDER") -> list[str]:
    """The first ``n`` references ``prefix-i`` that murmur2 puts on ``partition``."""
    found: list[str] = []
    i = 0
    while len(found) < n:
        ref = f"{prefix}-{i}"
        if partition_for(ref.encode(), PARTITIONS) == partition:
            found.append(ref)
        i += 1
    return found


def payment_value(ref: str, eid: str, amount: int, t: int, currency: str = "EUR") -> bytes:
    return orjson.dumps(
        {
            "event_id": eid,
            "reference": ref,
            "amount_minor": amount,
            "currency": currency,
            "event_time": t,
            "kind": "payment",
            "source": "psp",
        }
    )


def ledger_value(ref: str, eid: str, amount: int, t: int, currency: str = "EUR") -> bytes:
    return orjson.dumps(
        {
            "event_id": eid,
            "reference": ref,
            "amount_minor": amount,
            "currency": currency,
            "event_time": t,
            "direction": "credit",
            "account": "ACC-1",
        }
    )


def heartbeat(t: int) -> bytes:
    return orjson.dumps({"event_time": t})


def pay(partition: int, offset: int, ref: str, eid: str, amount: int, t: int) -> RawRecord:
    return RawRecord(PAY, partition, offset, ref.encode(), payment_value(ref, eid, amount, t))


def led(partition: int, offset: int, ref: str, eid: str, amount: int, t: int) -> RawRecord:
    return RawRecord(LED, partition, offset, ref.encode(), ledger_value(ref, eid, amount, t))


def hb(topic: str, partition: int, offset: int, t: int) -> RawRecord:
    return RawRecord(topic, partition, offset, None, heartbeat(t))


def spec_match_id(
    reference: str, flow: Flow, currency: str, pids: Sequence[str], lids: Sequence[str]
) -> str:
    """The match id as the spec defines it (BLAKE2b-128 of compact JSON), recomputed here."""
    parts = ["match", reference, flow.value, currency, sorted(pids), sorted(lids)]
    raw = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
    return blake2b(raw, digest_size=16).hexdigest()


def exact_match(
    ref: str, pid: str, lid: str, amount: int, first: int, matched_at: int
) -> MatchRecord:
    return MatchRecord(
        match_id=spec_match_id(ref, Flow.PAYMENT, "EUR", [pid], [lid]),
        reference=ref,
        flow=Flow.PAYMENT,
        rule=Rule.EXACT,
        currency="EUR",
        payment_amount_minor=amount,
        ledger_amount_minor=amount,
        difference_minor=0,
        payment_event_ids=(pid,),
        ledger_event_ids=(lid,),
        first_event_time_ms=first,
        matched_at_ms=matched_at,
        exception_id=None,
    )


class Stores(dict[int, MemoryStore]):
    """Backing MemoryStores by partition, created on first use."""

    def __call__(self, partition: int) -> MemoryStore:
        return self.setdefault(partition, MemoryStore())


def processor(stores: Stores, config: MatchConfig | None = None) -> BatchProcessor:
    return BatchProcessor(MatchingEngine(config), TOPICS, PARTITIONS, stores)


def only_meta(store: MemoryStore) -> bool:
    """The store holds the meta record alone: offsets read, nothing applied."""
    return [k for k, _ in store.scan(b"", b"\xff")] == [keys.META]


def pair_batch(p: int, ref: str, amount: int = 12_345) -> list[RawRecord]:
    """P1 at T0 and L1 at T0+1m, then heartbeats at T0+1h on both inputs of partition ``p``."""
    return [
        pay(p, 0, ref, "P1", amount, T0),
        led(p, 0, ref, "L1", amount, T0 + MIN),
        hb(PAY, p, 1, T0 + HOUR),
        hb(LED, p, 1, T0 + HOUR),
    ]


# ----------------------------------------------------------------------------- (a) a match


def test_pair_on_its_partition_matches_exactly_and_state_is_flushed() -> None:
    ref = "ORDER-1"
    p = partition_for(ref.encode(), PARTITIONS)
    stores = Stores()

    result = processor(stores).process(pair_batch(p, ref))

    # Both events buffer (watermark None, then T0-5m, then T0-4m); the last heartbeat moves the
    # watermark to T0+1h-5m, and the sweep applies P1 (T0) then L1 (T0+1m): an exact match
    # made at L1's event time.
    assert result.matches == [exact_match(ref, "P1", "L1", 12_345, T0, T0 + MIN)]
    assert result.exceptions == []
    assert result.dead_letters == []
    assert result.counters == {"events": 2, "heartbeats": 2, "buffered": 2, "released": 2}
    assert result.watermarks == {p: T0 + HOUR - LATENESS}
    assert set(stores) == {p}

    # A second processor (and engine) over the same backing stores sees the flushed state.
    fresh_engine = MatchingEngine()
    snap = fresh_engine.snapshot(stores[p], p)
    assert snap.partition == p
    assert snap.watermark_ms == T0 + HOUR - LATENESS
    assert (snap.payment_max_ms, snap.ledger_max_ms) == (T0 + HOUR, T0 + HOUR)
    assert (snap.payment_offset, snap.ledger_offset) == (1, 1)
    assert snap.buffered == ()
    assert snap.groups == ()  # the matched group is gone
    assert snap.raised_exceptions == ()
    assert fresh_engine.lookup(stores[p], ref) == []

    again = BatchProcessor(fresh_engine, TOPICS, PARTITIONS, stores).process(
        [hb(PAY, p, 2, T0 + 2 * HOUR), hb(LED, p, 2, T0 + 2 * HOUR)]
    )
    assert again.matches == []
    assert again.counters == {"heartbeats": 2}
    assert again.watermarks == {p: T0 + 2 * HOUR - LATENESS}


def test_open_group_is_visible_to_a_second_processor_which_completes_it() -> None:
    ref = "ORDER-2"
    p = partition_for(ref.encode(), PARTITIONS)
    stores = Stores()

    first = processor(stores).process(
        [pay(p, 0, ref, "P1", 500, T0), hb(PAY, p, 1, T0 + HOUR), hb(LED, p, 0, T0 + HOUR)]
    )
    assert first.matches == []
    assert first.exceptions == []
    assert first.dead_letters == []
    assert first.watermarks == {p: T0 + HOUR - LATENESS}

    # Released at T0+55m into an open group whose deadline is P1's time plus the window.
    engine2 = MatchingEngine()
    assert engine2.lookup(stores[p], ref) == [
        GroupView(
            reference=ref,
            flow=Flow.PAYMENT,
            currency="EUR",
            status=GroupStatus.OPEN,
            deadline_ms=T0 + WINDOW,
            exception_id=None,
            payment_events=(MemberView("P1", 500, T0),),
            ledger_events=(),
        )
    ]

    # L1 at T0+10m is behind the stored watermark: applied at once, matched at its own time.
    second = BatchProcessor(engine2, TOPICS, PARTITIONS, stores).process(
        [led(p, 1, ref, "L1", 500, T0 + 10 * MIN)]
    )
    assert second.matches == [exact_match(ref, "P1", "L1", 500, T0, T0 + 10 * MIN)]
    assert second.counters == {"events": 1, "late_events": 1}
    assert engine2.lookup(stores[p], ref) == []


# ----------------------------------------------------------------------------- (b)-(d) dead letters


def test_reference_on_the_wrong_partition_is_dead_lettered_and_engine_untouched() -> None:
    ref = "ORDER-3"
    right = partition_for(ref.encode(), PARTITIONS)
    wrong = (right + 1) % PARTITIONS
    record = pay(wrong, 7, ref, "P1", 100, T0)
    stores = Stores()

    result = processor(stores).process([record])

    assert result.matches == []
    assert result.exceptions == []
    assert len(result.dead_letters) == 1
    dead = result.dead_letters[0]
    assert (dead.source_topic, dead.partition, dead.offset) == (PAY, wrong, 7)
    assert (dead.key, dead.value) == (record.key, record.value)
    assert dead.reason == "KEY_MISMATCH"
    assert "murmur2" in dead.detail
    assert f"partition {right}" in dead.detail
    assert f"arrived on {wrong}" in dead.detail

    assert result.counters == {}
    assert result.watermarks == {wrong: None}
    snap = MatchingEngine().snapshot(stores[wrong], wrong)
    # Only its offset is recorded as read (so a skipped record would show); nothing else.
    assert (snap.payment_offset, snap.ledger_offset) == (7, -1)
    assert snap.watermark_ms is None
    assert snap.buffered == ()
    assert snap.groups == ()
    assert snap.raised_exceptions == ()
    assert only_meta(stores[wrong])
    assert right not in stores


def test_record_from_an_unknown_topic_is_dead_lettered() -> None:
    ref = "ORDER-4"
    p = partition_for(ref.encode(), PARTITIONS)
    value = payment_value(ref, "P1", 100, T0)
    stores = Stores()

    result = processor(stores).process([RawRecord("refunds", p, 3, ref.encode(), value)])

    assert len(result.dead_letters) == 1
    dead = result.dead_letters[0]
    key = ref.encode()
    assert dead == DeadLetter(
        "refunds", p, 3, key, value, "UNKNOWN_TOPIC", dead.detail,
        len(key), len(value), sha256(key).hexdigest(), sha256(value).hexdigest(),
    )  # fmt: skip
    assert result.matches == []
    assert result.exceptions == []
    assert len(stores[p]) == 0  # no input side: nothing to record


@pytest.mark.parametrize(
    "value",
    [
        b'{"event_id": "E1", "amount_minor": 1',  # truncated object
        b'{"event_id": "E1",}',  # trailing comma
        b"not json at all",
        b"[1, 2, 3]",  # JSON, but not an object
        b"",  # empty value
    ],
)
def test_invalid_json_is_dead_lettered_with_the_original_record(value: bytes) -> None:
    stores = Stores()
    key = b"ORDER-5"

    result = processor(stores).process([RawRecord(LED, 2, 11, key, value)])

    assert len(result.dead_letters) == 1
    dead = result.dead_letters[0]
    assert dead == DeadLetter(
        LED, 2, 11, key, value, "BAD_JSON", dead.detail,
        len(key), len(value), sha256(key).hexdigest(), sha256(value).hexdigest(),
    )  # fmt: skip
    assert dead.detail
    assert result.matches == []
    assert result.exceptions == []
    assert only_meta(stores[2])


# ----------------------------------------------------------------------------- (e) isolation


def test_corrupt_meta_parks_that_partition_and_others_proceed() -> None:
    """Garbage under the meta key ``W``: every admitted record of that partition is a
    PROCESSING_ERROR dead letter, the other partition of the same batch matches normally."""
    bad, good = 0, 1
    a, b = refs_on(bad, 2, "BAD")
    (c,) = refs_on(good, 1, "GOOD")
    stores = Stores()
    stores(bad).put(keys.META, b"\x00garbage\xff")
    bad_records = [
        pay(bad, 0, a, "A-P1", 100, T0),
        led(bad, 0, b, "B-L1", 200, T0),
        hb(PAY, bad, 1, T0 + HOUR),
    ]
    misrouted = pay(bad, 2, c, "C-P9", 1, T0)  # rejected before the engine: not a processing error

    result = processor(stores).process([*bad_records, misrouted, *pair_batch(good, c, 700)])

    assert result.matches == [exact_match(c, "P1", "L1", 700, T0, T0 + MIN)]
    assert result.watermarks[good] == T0 + HOUR - LATENESS
    parked = [(d.source_topic, d.partition, d.offset, d.reason) for d in result.dead_letters]
    assert sorted(parked) == sorted(
        [(r.topic, r.partition, r.offset, "PROCESSING_ERROR") for r in bad_records]
        + [(PAY, bad, 2, "KEY_MISMATCH")]
    )
    for d in result.dead_letters:
        if d.reason == "PROCESSING_ERROR":
            assert "CorruptStateError" in d.detail
    assert stores[bad].get(keys.META) == b"\x00garbage\xff"  # left as it was


def test_failing_late_event_is_parked_alone() -> None:
    """A corrupt group record fails only the event that reads it; the rest of the batch,
    replayed item by item, matches as it would have."""
    p = 2
    a, b = refs_on(p, 2, "ISO")
    stores = Stores()
    proc = processor(stores)
    warm = proc.process([hb(PAY, p, 0, T0 + HOUR), hb(LED, p, 0, T0 + HOUR)])
    assert warm.watermarks == {p: T0 + HOUR - LATENESS}
    stores[p].put(keys.group_key(keys.group_id(a, Flow.PAYMENT, "EUR")), b"not a group")

    # A's payment is behind the watermark (late): applied at once, it reads the bad group.
    late_a = pay(p, 1, a, "A-P1", 100, T0)
    t = T0 + HOUR + MIN
    result = proc.process(
        [
            late_a,
            pay(p, 2, b, "B-P1", 300, t),
            led(p, 1, b, "B-L1", 300, t),
            hb(PAY, p, 3, T0 + 3 * HOUR),
            hb(LED, p, 2, T0 + 3 * HOUR),
        ]
    )

    assert [(d.source_topic, d.offset, d.reason) for d in result.dead_letters] == [
        (PAY, 1, "PROCESSING_ERROR")
    ]
    assert "CorruptStateError" in result.dead_letters[0].detail
    assert (result.dead_letters[0].key, result.dead_letters[0].value) == (late_a.key, late_a.value)
    assert result.matches == [exact_match(b, "B-P1", "B-L1", 300, t, t)]
    assert result.watermarks == {p: T0 + 3 * HOUR - LATENESS}


def test_isolation_does_not_lose_outputs_of_a_partly_applied_sweep() -> None:
    """B's pair is released (and matched) before A's corrupt group is read in the same sweep.

    Replayed item by item, the failing item is the heartbeat whose sweep reaches A. Whatever
    that record's fate, B's match must either be emitted or B's events must stay unconsumed:
    a match must not be applied to the state and then dropped.
    """
    p = 0
    a, b = refs_on(p, 2, "SWEEP")
    stores = Stores()
    stores(p).put(keys.group_key(keys.group_id(a, Flow.PAYMENT, "EUR")), b"not a group")
    proc = processor(stores)

    result = proc.process(
        [
            pay(p, 0, b, "B-P1", 100, T0),
            pay(p, 1, a, "A-P1", 100, T0 + 1_000),
            led(p, 0, b, "B-L1", 100, T0 + 10),
            led(p, 1, a, "A-L1", 100, T0 + 1_010),
            hb(PAY, p, 2, T0 + HOUR),
            hb(LED, p, 2, T0 + HOUR),
        ]
    )
    later = proc.process([hb(PAY, p, 3, T0 + 2 * HOUR), hb(LED, p, 3, T0 + 2 * HOUR)])

    emitted = result.matches + later.matches
    b_match = exact_match(b, "B-P1", "B-L1", 100, T0, T0 + 10)
    b_buffered = [keys.buffer_key(T0, Side.PAYMENT, 0), keys.buffer_key(T0 + 10, Side.LEDGER, 0)]
    b_unconsumed = MatchingEngine().lookup(stores[p], b) != [] or any(
        stores[p].get(k) is not None for k in b_buffered
    )
    assert b_match in emitted or b_unconsumed, (
        "B's match was applied to the state but never emitted"
    )


# ----------------------------------------------------------------------------- (f) redelivery


def test_replaying_offsets_emits_nothing_and_changes_nothing() -> None:
    ref = "ORDER-6"
    p = partition_for(ref.encode(), PARTITIONS)
    stores = Stores()
    proc = processor(stores)
    records = pair_batch(p, ref)
    first = proc.process(records)
    assert first.matches == [exact_match(ref, "P1", "L1", 12_345, T0, T0 + MIN)]
    state_before = dict(stores[p].scan(b"", b"\xff"))

    replay = proc.process(records)

    assert replay.matches == []
    assert replay.exceptions == []
    assert replay.outgoing == []
    assert replay.counters == {"replays": 4}
    assert dict(stores[p].scan(b"", b"\xff")) == state_before


# ----------------------------------------------------------------------------- (g) bounds


def test_released_backlog_goes_out_in_bounded_chunks() -> None:
    p = 0
    refs = refs_on(p, 300)
    records = [pay(p, i, ref, f"P{i}", 100 + i, T0 + i) for i, ref in enumerate(refs)]
    beyond = T0 + 3 * WINDOW
    records += [hb(LED, p, 0, beyond), hb(PAY, p, len(refs), beyond)]

    whole = processor(Stores()).process(records)
    assert len(whole.exceptions) == 300  # MISSING_LEDGER for every payment

    stores = Stores()
    proc = BatchProcessor(MatchingEngine(), TOPICS, PARTITIONS, stores, sweep_chunk=40)
    run = proc.start(records)
    chunks: list[BatchResult] = []
    while not run.done:
        chunks.append(run.next_chunk())
    # 300 releases and 300 deadlines, 40 steps a chunk.
    assert len(chunks) >= 600 // 40
    assert max(len(c.outgoing) for c in chunks) <= 40
    assert [e for c in chunks for e in c.exceptions] == whole.exceptions
    assert b"".join(o.value for c in chunks for o in c.outgoing) == b"".join(
        o.value for o in whole.outgoing
    )


def _stamped(record: RawRecord, timestamp_ms: int | None) -> RawRecord:
    return RawRecord(
        record.topic, record.partition, record.offset, record.key, record.value, timestamp_ms
    )


def test_event_time_far_ahead_of_the_kafka_timestamp_is_dead_lettered() -> None:
    ref = "ORDER-9"
    p = partition_for(ref.encode(), PARTITIONS)
    proc = BatchProcessor(
        MatchingEngine(), TOPICS, PARTITIONS, Stores(), max_event_time_ahead_ms=HOUR
    )
    far = T0 + 7975 * 365 * 24 * HOUR  # year 9999
    records = [
        _stamped(pay(p, 0, ref, "P1", 100, T0), T0),
        _stamped(pay(p, 1, ref, "P2", 100, T0 + HOUR), T0),  # exactly at the bound: accepted
        _stamped(pay(p, 2, ref, "P3", 100, T0 + HOUR + 1), T0),
        _stamped(led(p, 0, ref, "L1", 100, far), T0),
        _stamped(hb(LED, p, 1, far), T0),
        _stamped(led(p, 2, ref, "L2", 100, far), None),  # no timestamp: no bound to check
    ]
    result = proc.process(records)
    assert [(d.source_topic, d.offset, d.reason) for d in result.dead_letters] == [
        (PAY, 2, "BAD_EVENT_TIME"),
        (LED, 0, "BAD_EVENT_TIME"),
        (LED, 1, "BAD_EVENT_TIME"),
    ]
    assert "ahead of the record's Kafka timestamp" in result.dead_letters[0].detail
    assert result.counters["events"] == 3


def test_an_output_too_large_to_send_isolates_its_record_only() -> None:
    big_ref = "R" * 128
    p = partition_for(big_ref.encode(), PARTITIONS)
    ok1, ok2 = refs_on(p, 2)
    stores = Stores()
    proc = BatchProcessor(MatchingEngine(), TOPICS, PARTITIONS, stores, max_record_bytes=420)
    long_id = "E" * 127
    first = proc.process(
        [
            pay(p, 0, ok1, "P1", 100, T0),
            led(p, 0, ok1, "L1", 100, T0 + 1),
            pay(p, 1, big_ref, "P" + long_id, 100, T0 + 2),
            pay(p, 2, ok2, "P2", 100, T0 + 3),
            hb(PAY, p, 3, T0 + HOUR),
            hb(LED, p, 1, T0 + HOUR),
        ]
    )
    assert [m.reference for m in first.matches] == [ok1]
    # Late ledger entries (behind the watermark) are applied at once: each closes its pair.
    result = proc.process(
        [
            led(p, 2, big_ref, "L" + long_id, 100, T0 + 4),  # its match is over 420 bytes
            led(p, 3, ok2, "L2", 100, T0 + 5),
        ]
    )
    assert result.isolated == 1
    assert [(d.source_topic, d.offset, d.reason) for d in result.dead_letters] == [
        (LED, 2, "PROCESSING_ERROR")
    ]
    assert "OutputTooLargeError" in result.dead_letters[0].detail
    assert [m.reference for m in result.matches] == [ok2]
    results = [o for o in result.outgoing if o.topic != TOPICS.dlq]
    assert all(len(o.key or b"") + len(o.value) <= 420 for o in results)
    # The record at fault left no trace in the state: its reference's payment is still open.
    (group,) = MatchingEngine().lookup(stores[p], big_ref)
    assert group.ledger_events == ()


# ----------------------------------------------------------------------------- (h) skipped records


class Log:
    """An input log to read ranges back from, as the worker's RecordReader reads Kafka."""

    def __init__(self, records: list[RawRecord]) -> None:
        self.records = records
        self.reads: list[tuple[str, int, int, int]] = []

    def read(self, topic: str, partition: int, start: int, end: int, limit: int) -> list[RawRecord]:
        self.reads.append((topic, partition, start, end))
        return [
            r
            for r in self.records
            if (r.topic, r.partition) == (topic, partition) and start <= r.offset < end
        ][:limit]


def test_records_the_consumer_skipped_are_read_again_and_applied_in_order() -> None:
    p = 1
    refs = refs_on(p, 4, "GAP")
    log = Log(
        [pay(p, i, ref, f"P{i}", 100 + i, T0 + i) for i, ref in enumerate(refs)]
        + [led(p, i, ref, f"L{i}", 100 + i, T0 + 10 + i) for i, ref in enumerate(refs)]
        + [hb(PAY, p, 4, T0 + HOUR), hb(LED, p, 4, T0 + HOUR)]
    )
    whole = processor(Stores()).process(log.records)
    assert len(whole.matches) == 4

    stores = Stores()
    proc = BatchProcessor(MatchingEngine(), TOPICS, PARTITIONS, stores, refetch=log.read)
    first = proc.process([r for r in log.records if r.offset < 2])
    # The consumer skipped payments 2..3 and ledger 2..3 (as Faust's does across a rebalance).
    second = proc.process([r for r in log.records if r.offset >= 4])
    assert sorted(log.reads) == [(LED, p, 2, 4), (PAY, p, 2, 4)]
    assert second.refetched == 4
    assert first.matches + second.matches == whole.matches
    assert first.exceptions + second.exceptions == whole.exceptions == []


def test_a_dead_letter_is_not_taken_for_a_skipped_record() -> None:
    p = 0
    (ref,) = refs_on(p, 1, "DLQ")
    log = Log(
        [
            pay(p, 0, ref, "P0", 100, T0),
            RawRecord(PAY, p, 1, ref.encode(), b"{not json"),
            pay(p, 2, ref, "P2", 5, T0 + 1),
        ]
    )
    proc = BatchProcessor(MatchingEngine(), TOPICS, PARTITIONS, Stores(), refetch=log.read)
    first = proc.process(log.records[:2])
    assert [d.reason for d in first.dead_letters] == ["BAD_JSON"]
    second = proc.process(log.records[2:])
    assert log.reads == []
    assert second.refetched == 0
    assert second.counters["events"] == 1


def test_a_long_gap_is_read_in_parts_and_nothing_past_it_is_applied_first() -> None:
    p = 2
    refs = refs_on(p, 10, "LONG")
    log = Log(
        [pay(p, i, ref, f"P{i}", 100 + i, T0 + i) for i, ref in enumerate(refs)]
        + [led(p, i, ref, f"L{i}", 100 + i, T0 + 20 + i) for i, ref in enumerate(refs)]
        + [hb(PAY, p, 10, T0 + HOUR), hb(LED, p, 10, T0 + HOUR)]
    )
    whole = processor(Stores()).process(log.records)
    assert len(whole.matches) == 10

    stores = Stores()
    proc = BatchProcessor(
        MatchingEngine(), TOPICS, PARTITIONS, stores, refetch=log.read, refetch_limit=3
    )
    out = proc.process([r for r in log.records if r.offset == 0])
    # Then only the last records arrive, again and again (as a consumer past the gap would).
    tail = [r for r in log.records if r.offset >= 9]
    for _ in range(4):
        out.extend(proc.process(tail))
    assert out.matches == whole.matches
    assert MatchingEngine().snapshot(stores[p], p).payment_offset == 10

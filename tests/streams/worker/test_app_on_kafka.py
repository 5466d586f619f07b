"""The worker on the real broker: ground truth, restarts, state rebuild, kill -9, scale-out."""

from __future__ import annotations

import random
import shutil
import time
import urllib.request
from collections.abc import Callable
from urllib.error import HTTPError

import orjson
from confluent_kafka import Producer

from streams.local_runner import wait_for_batches, worker_metric
from streams.simulate.encoding import heartbeat
from streams.simulate.produce import produce, producer_config
from streams.simulate.scenarios import START_MS, simulate
from streams.simulate.truth import Truth, check, truth_of
from streams.worker.partitioning import partition_for
from streams.worker.settings import WorkerSettings
from tests.streams.worker.harness import TEST_MATCH, OutputReader, Outputs, WorkerProcess

StartWorker = Callable[..., WorkerProcess]


def _complete(truth: Truth) -> Callable[[Outputs], bool]:
    """Every expected id seen, and every resolution seen."""
    resolved = {i for i, e in truth.exceptions.items() if e["status"] == "resolved"}

    def done(out: Outputs) -> bool:
        seen_m = {m.match_id for m in out.matches}
        seen_e = {e.exception_id for e in out.exceptions}
        seen_r = {e.exception_id for e in out.exceptions if e.status.value == "resolved"}
        return (
            truth.matches.keys() <= seen_m
            and truth.exceptions.keys() <= seen_e
            and resolved <= seen_r
            and len(out.dead_letters) >= sum(truth.dead_letters.values())
        )

    return done


def _assert_truth(truth: Truth, out: Outputs, *, allow_repeats: bool) -> None:
    verdict = check(truth, out.matches, out.exceptions, out.dead_letters)
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.matches == len(truth.matches)
    if not allow_repeats:
        assert verdict.duplicate_records == 0


def test_simulation_through_worker_equals_ground_truth(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    start_worker()
    sim = simulate(2500, seed=11, config=TEST_MATCH)
    truth = truth_of(sim)
    produce(
        sim, worker_settings.kafka, worker_settings.topics, worker_settings.partitions, fmt="avro"
    )
    out = outputs.read_until(_complete(truth), timeout=120)
    out = outputs.settle()
    _assert_truth(truth, out, allow_repeats=False)
    # Every scenario was played, so every rule and kind is covered.
    assert {m["rule"] for m in truth.matches.values()} == {"exact", "split", "tolerance", "late"}
    assert {e["kind"] for e in truth.exceptions.values()} == {
        "MISSING_LEDGER",
        "MISSING_PAYMENT",
        "AMOUNT_MISMATCH",
        "CURRENCY_MISMATCH",
        "DUPLICATE_CONFLICT",
    }


def _send(
    settings: WorkerSettings, records: list[tuple[str, bytes | None, bytes, int | None]]
) -> None:
    producer = Producer(producer_config(settings.kafka))
    for topic, key, value, partition in records:
        if partition is None:
            producer.produce(topic, key=key, value=value)
        else:
            producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def _event(ref: str, eid: str, amount: int, t: int, side: str) -> bytes:
    body: dict[str, object] = {
        "event_id": eid,
        "reference": ref,
        "amount_minor": amount,
        "currency": "EUR",
        "event_time": t,
    }
    body.update({"kind": "payment"} if side == "payment" else {"direction": "credit"})
    return orjson.dumps(body)


def _heartbeats(
    settings: WorkerSettings, t: int, topics: tuple[str, ...]
) -> list[tuple[str, bytes | None, bytes, int | None]]:
    return [
        (topic, None, heartbeat(t, "json"), p)
        for topic in topics
        for p in range(settings.partitions)
    ]


def _view(worker: WorkerProcess, ref: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{worker.port}/references/{ref}", timeout=10
        ) as r:
            return r.status, orjson.loads(r.read())
    except HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _wait_open(worker: WorkerProcess, refs: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = set(refs)
    while pending and time.monotonic() < deadline:
        pending = {r for r in pending if _view(worker, r)[0] != 200}
        time.sleep(0.5)
    assert not pending, f"never became open groups: {sorted(pending)[:5]}"


def test_open_groups_survive_restart_and_rocksdb_loss(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader, tmp_path
) -> None:
    t = worker_settings.topics
    lateness = TEST_MATCH.allowed_lateness_ms
    a_refs = [f"RST-A-{i}" for i in range(30)]
    b_refs = [f"RST-B-{i}" for i in range(30)]
    t0 = START_MS
    worker = start_worker("w1")
    # Payments of A, then a ledger heartbeat past them: A becomes open groups (not just buffered).
    _send(
        worker_settings,
        [
            (t.payments, r.encode(), _event(r, f"{r}-p", 1000 + i, t0 + i, "payment"), None)
            for i, r in enumerate(a_refs)
        ],
    )
    _send(worker_settings, _heartbeats(worker_settings, t0 + 2 * lateness, (t.ledger, t.payments)))
    _wait_open(worker, a_refs)
    status, body = _view(worker, a_refs[0])
    assert status == 200
    assert body["groups"][0]["status"] == "open"
    assert _view(worker, "RST-NEVER-SEEN")[0] == 404
    worker.stop()

    # Restart on the same RocksDB: the counterparts match what was open before.
    worker = start_worker("w1")
    t1 = t0 + 3 * lateness
    _send(
        worker_settings,
        [
            (t.ledger, r.encode(), _event(r, f"{r}-l", 1000 + i, t1 + i, "ledger"), None)
            for i, r in enumerate(a_refs)
        ],
    )
    _send(
        worker_settings,
        [
            (t.payments, r.encode(), _event(r, f"{r}-p", 2000 + i, t1 + i, "payment"), None)
            for i, r in enumerate(b_refs)
        ],
    )
    _send(worker_settings, _heartbeats(worker_settings, t1 + 2 * lateness, (t.ledger, t.payments)))
    out = outputs.read_until(lambda o: len(o.matches) >= len(a_refs), timeout=60)
    assert sorted(m.reference for m in out.matches) == sorted(a_refs)
    assert all(m.rule.value == "exact" for m in out.matches)
    _wait_open(worker, b_refs)
    worker.stop()

    # Lose the local RocksDB: state is rebuilt from the changelog, B still matches, A does not rematch.
    shutil.rmtree(tmp_path / "w1")
    worker = start_worker("w1")
    t2 = t1 + 3 * lateness
    _send(
        worker_settings,
        [
            (t.ledger, r.encode(), _event(r, f"{r}-l", 2000 + i, t2 + i, "ledger"), None)
            for i, r in enumerate(b_refs)
        ],
    )
    _send(worker_settings, _heartbeats(worker_settings, t2 + 2 * lateness, (t.ledger, t.payments)))
    out = outputs.read_until(lambda o: len(o.matches) >= len(a_refs) + len(b_refs), timeout=90)
    out = outputs.settle()
    assert sorted(m.reference for m in out.matches) == sorted(a_refs + b_refs)
    assert len({m.match_id for m in out.matches}) == len(out.matches)
    assert out.exceptions == []


def test_kill_9_mid_stream_loses_and_doubles_nothing(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    sim = simulate(4000, seed=23, config=TEST_MATCH)
    truth = truth_of(sim)
    # A dead worker's partitions move after the session timeout: 10 s instead of Faust's 60 s.
    crashy = {"RECON_BATCH_MAX": "200", "RECON_SESSION_TIMEOUT": "10s"}
    worker = start_worker("w1", **crashy)
    import threading

    producing = threading.Thread(
        target=produce,
        args=(sim, worker_settings.kafka, worker_settings.topics, worker_settings.partitions),
        # Slow enough that traffic outlasts all three kills (each costs a 10 s session
        # timeout): a worker that had caught up with a finished producer would leave its
        # successor nothing to process, and the next kill would not be mid-stream.
        kwargs={"rate": 80.0},
    )
    producing.start()
    for round_ in range(3):
        # Mid-stream: the worker has committed batches and is in the middle of others.
        wait_for_batches(worker.port, 3, timeout=150)
        time.sleep(random.uniform(0, 0.5))
        assert producing.is_alive(), f"traffic ended before kill {round_ + 1}"
        worker.kill9()
        # The last restart is on an empty data directory: state comes from the changelog.
        name = "w1" if round_ < 2 else "w1-rebuilt"
        worker = start_worker(name, **crashy)
    producing.join(150)
    out = outputs.read_until(_complete(truth), timeout=180)
    out = outputs.settle()
    # At-least-once: a repeated record has the same id and content; distinct ids equal the truth.
    _assert_truth(truth, out, allow_repeats=True)


def test_two_workers_split_partitions_and_keep_the_truth(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    first = start_worker("w1")
    second = start_worker("w2")
    sim = simulate(2500, seed=31, config=TEST_MATCH)
    truth = truth_of(sim)
    produce(sim, worker_settings.kafka, worker_settings.topics, worker_settings.partitions)
    out = outputs.read_until(_complete(truth), timeout=150)
    out = outputs.settle()
    _assert_truth(truth, out, allow_repeats=True)
    # Both members did work.
    for worker in (first, second):
        assert "reconcile" in worker.tail(400)
    metrics = [worker_metric(w.port, "recon_records_in_total") for w in (first, second)]
    assert all(m > 0 for m in metrics), metrics


def test_wrong_partition_is_dead_lettered_and_heartbeats_drive_timeouts(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    t = worker_settings.topics
    start_worker()
    ref = "HB-ALONE-1"
    right = partition_for(ref.encode(), worker_settings.partitions)
    wrong = (right + 1) % worker_settings.partitions
    stray = "HB-STRAY-1"
    _send(
        worker_settings,
        [
            (t.payments, ref.encode(), _event(ref, f"{ref}-p", 5000, START_MS, "payment"), None),
            (
                t.ledger,
                stray.encode(),
                _event(stray, f"{stray}-l", 7000, START_MS, "ledger"),
                (partition_for(stray.encode(), worker_settings.partitions) + 1)
                % worker_settings.partitions,
            ),
        ],
    )
    out = outputs.read_until(lambda o: len(o.dead_letters) >= 1, timeout=60)
    assert [(d.reason, d.key) for d in out.dead_letters] == [("KEY_MISMATCH", stray.encode())]
    assert "murmur2" in out.dead_letters[0].detail
    # No ledger traffic at all: the payment waits, nothing times out on the wall clock.
    time.sleep(3)
    outputs.drain(1.0)
    assert outputs.out.exceptions == []
    # Heartbeats on both inputs past the window: the deadline fires, deterministically.
    beyond = START_MS + TEST_MATCH.match_window_ms + TEST_MATCH.allowed_lateness_ms + 60_000
    _send(
        worker_settings,
        [
            (t.ledger, None, heartbeat(beyond, "json"), right),
            (t.payments, None, heartbeat(beyond, "json"), right),
        ],
    )
    out = outputs.read_until(lambda o: len(o.exceptions) >= 1, timeout=60)
    assert [(e.kind.value, e.reference, e.payment_event_ids) for e in out.exceptions] == [
        ("MISSING_LEDGER", ref, (f"{ref}-p",))
    ]
    assert wrong != right


def test_idle_timeout_heartbeats_a_silent_input(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    """Ledger silent, payments flowing: after RECON_IDLE_TIMEOUT the worker writes ledger
    heartbeats itself, so an old payment's deadline fires without any ledger traffic."""
    t = worker_settings.topics
    start_worker(RECON_IDLE_TIMEOUT="1s")
    n = worker_settings.partitions
    ref = "IDLE-OLD-1"
    p = partition_for(ref.encode(), n)
    # Other references on the same partition keep the payment input busy, past the deadline.
    fillers = [
        r for r in (f"IDLE-FILL-{i}" for i in range(500)) if partition_for(r.encode(), n) == p
    ][:12]
    beyond = TEST_MATCH.match_window_ms + TEST_MATCH.allowed_lateness_ms + 60_000
    _send(
        worker_settings,
        [(t.payments, ref.encode(), _event(ref, f"{ref}-p", 4200, START_MS, "payment"), None)],
    )
    for i, filler in enumerate(fillers):
        _send(
            worker_settings,
            [
                (
                    t.payments,
                    filler.encode(),
                    _event(filler, f"{filler}-p", 100 + i, START_MS + beyond + i, "payment"),
                    None,
                )
            ],
        )
        time.sleep(0.3)
    out = outputs.read_until(lambda o: any(e.reference == ref for e in o.exceptions), timeout=30)
    raised = [e for e in out.exceptions if e.reference == ref]
    assert [(e.kind.value, e.payment_event_ids) for e in raised] == [
        ("MISSING_LEDGER", (f"{ref}-p",))
    ]


def _confluent(schema_id: int, schema: str, datum: dict[str, object]) -> bytes:
    """The Confluent wire format: magic byte, schema id, Avro body."""
    import io

    import fastavro

    from streams.contract.registry import default_registry

    body = io.BytesIO()
    fastavro.schemaless_writer(body, default_registry().current(schema).parsed, datum)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def test_schema_registry_outage_pauses_the_worker_instead_of_dead_lettering(
    worker_settings: WorkerSettings, start_worker: StartWorker, outputs: OutputReader
) -> None:
    from streams.contract.registry import default_schemas_dir
    from tests.registry_stub import RegistryStub

    stub = RegistryStub()
    try:
        for schema_id, name in ((1, "PaymentEvent"), (2, "LedgerEvent"), (3, "Heartbeat")):
            stub.schemas[schema_id] = (default_schemas_dir() / name / "v1.avsc").read_text()
        stub.available = False
        start_worker("w1", SCHEMA_REGISTRY_URL=stub.url)
        t, ref = worker_settings.topics, "SR-OUTAGE-1"
        event = {"event_id": "", "reference": ref, "amount_minor": 4_200, "currency": "EUR"}
        t0 = START_MS
        late = t0 + 2 * TEST_MATCH.allowed_lateness_ms
        records = [
            (
                t.payments,
                ref.encode(),
                _confluent(
                    1,
                    "PaymentEvent",
                    {**event, "event_id": "p1", "event_time": t0, "kind": "payment"},
                ),
                None,
            ),
            (
                t.ledger,
                ref.encode(),
                _confluent(
                    2,
                    "LedgerEvent",
                    {**event, "event_id": "l1", "event_time": t0 + 1, "direction": "credit"},
                ),
                None,
            ),
        ]
        records += [
            (topic, None, _confluent(3, "Heartbeat", {"event_time": late}), p)
            for topic in (t.payments, t.ledger)
            for p in range(worker_settings.partitions)
        ]
        _send(worker_settings, records)

        deadline = time.monotonic() + 60
        while stub.requests < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stub.requests >= 3, "the worker never asked the registry"
        outputs.drain(2.0)
        assert outputs.out.dead_letters == []  # an outage is not the records' fault
        assert outputs.out.matches == []

        stub.available = True
        out = outputs.read_until(lambda o: len(o.matches) >= 1, timeout=90)
        out = outputs.settle()
        assert [(m.reference, m.rule.value) for m in out.matches] == [(ref, "exact")]
        assert out.dead_letters == []
        assert out.exceptions == []
    finally:
        stub.close()

"""The fault suite's parts: traffic with its ground truth, the system under test, the tally.

A scenario (tests/faults/scenarios.py) opens a :class:`Run`: its own topics, PostgreSQL
schema, worker and sink processes (streams.local_runner), and a :class:`Traffic` thread sending a
simulation whose ground truth is known. It injects its faults while the traffic flows, then
:meth:`Run.settle` sends the rest at full speed and checks the tables against the truth,
record by record, and runs ``recon verify``.

Lost and doubled are counted per input record: a record is *lost* when a row the truth
expects for it is missing or wrong, and *doubled* when a row the truth does not expect holds
it (a second outcome for one input). Dead letters are compared by reason.

Recovery is the time from the end of a fault (the kill, the restart of a server) until every
partition has made progress again: each input partition's committed offset in the workers'
group (or each output partition's offset in the sink's table) has moved past where it was,
or has reached the partition's end.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streams.contract.model import Side
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import Pipeline, Process, env_for, free_port, pipeline
from streams.settings import KafkaSettings
from streams.simulate.encoding import encode_value, heartbeat
from streams.simulate.produce import producer_config
from streams.simulate.scenarios import Simulation
from streams.simulate.truth import Truth, truth_of
from streams.simulate.verify_pg import table_state
from streams.worker.settings import WorkerSettings

MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)
ROOT = Path(__file__).resolve().parents[2]
# How long a dead worker (kill -9) or sink keeps its partitions before the group moves them:
# the fault suite's settings, short so that trials are many (the defaults: 60 s and 45 s).
WORKER_SESSION_TIMEOUT_MS = 10_000
SINK_SESSION_TIMEOUT = "6s"


@dataclass
class Figures:
    """One scenario's record: what was sent and what became of it, and the recovery times."""

    scenario: str
    trials: int = 0
    sent: int = 0
    lost: int = 0
    doubled: int = 0
    dead_lettered: int = 0
    worker_exits: int = 0
    verify_failures: int = 0
    recovery_s: list[float] = field(default_factory=list)
    # Recoveries of a worker restarted on an empty data directory (state from the changelog).
    recovery_empty_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.doubled or self.worker_exits or self.verify_failures or self.problems
        )

    def add(self, other: Figures) -> None:
        self.trials += other.trials
        self.sent += other.sent
        self.lost += other.lost
        self.doubled += other.doubled
        self.dead_lettered += other.dead_lettered
        self.worker_exits += other.worker_exits
        self.verify_failures += other.verify_failures
        self.recovery_s += other.recovery_s
        self.recovery_empty_s += other.recovery_empty_s
        self.problems += other.problems
        for key, value in other.notes.items():
            self.notes.setdefault(key, []).extend(value if isinstance(value, list) else [value])
        self.seconds += other.seconds

    def summary(self) -> dict[str, Any]:
        r, e = sorted(self.recovery_s), sorted(self.recovery_empty_s)
        return {
            "scenario": self.scenario,
            "trials": self.trials,
            "sent": self.sent,
            "lost": self.lost,
            "doubled": self.doubled,
            "dead_lettered": self.dead_lettered,
            "worker_exits": self.worker_exits,
            "verify_failures": self.verify_failures,
            "recovery_p50_s": round(statistics.median(r), 1) if r else None,
            "recovery_max_s": round(r[-1], 1) if r else None,
            "empty_dir_trials": len(e),
            "empty_dir_recovery_p50_s": round(statistics.median(e), 1) if e else None,
            "empty_dir_recovery_max_s": round(e[-1], 1) if e else None,
            "notes": self.notes,
            "seconds": round(self.seconds),
            "ok": self.ok,
            "problems": self.problems[:20],
        }


class Traffic(threading.Thread):
    """Sends a simulation in emission order at ``rate`` records/s until :meth:`hurry` (then as
    fast as it can), and then, once :attr:`release` is set, a heartbeat on every partition of
    both inputs past every deadline, so every group of the run closes."""

    def __init__(
        self,
        sim: Simulation,
        kafka: KafkaSettings,
        settings: WorkerSettings,
        rate: float,
        *,
        release: bool = True,
    ) -> None:
        super().__init__(name="traffic", daemon=True)
        self.sim, self.kafka, self.settings, self.rate = sim, kafka, settings, rate
        self.sent = 0
        self.errors: list[str] = []
        self.fast = threading.Event()
        self.release = threading.Event()
        if release:
            self.release.set()
        self.done = threading.Event()

    def hurry(self) -> None:
        self.fast.set()

    def run(self) -> None:
        try:
            self._send()
        except Exception as exc:  # reported by finish(): a thread cannot raise to the test
            self.errors.append(repr(exc))
        finally:
            self.done.set()

    def _send(self) -> None:
        producer = Producer(producer_config(self.kafka))
        topics = self.settings.topics
        names = {Side.PAYMENT: topics.payments, Side.LEDGER: topics.ledger}

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self.errors.append(str(err))

        started = time.monotonic()
        for record in self.sim.records:
            value = encode_value(record, "json")
            self._put(producer, names[record.side], record.key, value, None, delivered)
            self.sent += 1
            if not self.fast.is_set() and self.sent % 50 == 0:
                ahead = self.sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    self.fast.wait(ahead)
        while not self.release.wait(0.2):
            producer.poll(0)
        for partition in range(self.settings.partitions):
            for topic in names.values():
                beat = heartbeat(self.sim.flush_time_ms, "json")
                self._put(producer, topic, None, beat, partition, delivered)
        left = producer.flush(300)
        if left:
            self.errors.append(f"{left} records undelivered")

    @staticmethod
    def _put(
        producer: Producer,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        delivered: Callable[[KafkaError | None, Message], None],
    ) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:  # the local queue is full (a broker outage): wait for it
                producer.poll(0.1)
        producer.poll(0)

    def finish(self, timeout: float) -> None:
        self.hurry()
        self.release.set()
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"traffic not delivered within {timeout}s")
        if self.errors:
            raise RuntimeError(f"traffic failed: {self.errors[:3]}")


Positions = dict[tuple[str, int], int]


def _frozen(row: Mapping[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _rows_by_input(
    matches: Mapping[str, Mapping[str, Any]], exceptions: Mapping[str, Mapping[str, Any]]
) -> dict[str, set[bytes]]:
    by_input: dict[str, set[bytes]] = {}
    for kind, rows in (("match", matches), ("exception", exceptions)):
        for row_id, row in rows.items():
            entry = _frozen({"kind": kind, "id": row_id, **row})
            for side in ("payment_event_ids", "ledger_event_ids"):
                for event_id in row[side]:
                    by_input.setdefault(f"{side[0]}:{event_id}", set()).add(entry)
    return by_input


def tally(truth: Truth, conn: psycopg.Connection[Any]) -> tuple[int, int, int, list[str]]:
    """(lost, doubled, dead-lettered, problems) of the tables against the truth, per input."""
    matches, exceptions, dead = table_state(conn)
    want = _rows_by_input(truth.matches, truth.exceptions)
    got = _rows_by_input(matches, exceptions)
    lost = doubled = 0
    problems: list[str] = []
    for key in want.keys() | got.keys():
        missing = want.get(key, set()) - got.get(key, set())
        extra = got.get(key, set()) - want.get(key, set())
        lost += bool(missing)
        doubled += bool(extra)
        if (missing or extra) and len(problems) < 10:
            problems.append(f"input {key}: missing {len(missing)} rows, unexpected {len(extra)}")
    want_dead, got_dead = Counter(truth.dead_letters), Counter(dead)
    lost += sum((want_dead - got_dead).values())
    doubled += sum((got_dead - want_dead).values())
    if want_dead != got_dead:
        problems.append(f"dead letters by reason: want {dict(want_dead)}, got {dict(got_dead)}")
    return lost, doubled, sum(got_dead.values()), problems


@dataclass
class Run:
    """One pipeline under test: its processes, its traffic and the figures it adds up."""

    pipe: Pipeline
    kafka: KafkaSettings
    truth: Truth
    traffic: Traffic
    figures: Figures
    rng: random.Random
    sink_port: int
    worker_env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, Process] = field(default_factory=dict)
    sink_proc: Process | None = None
    killed: set[int] = field(default_factory=set)

    @property
    def settings(self) -> WorkerSettings:
        return self.pipe.settings

    # -- processes -------------------------------------------------------------------------

    def start_worker(
        self, name: str = "worker", *, wipe: bool = False, wait: bool = True
    ) -> Process:
        """(Re)start worker ``name`` on its data directory; ``wipe``: delete it first, so its
        state comes back from the changelog."""
        if wipe:
            shutil.rmtree(self.pipe.work_dir / name, ignore_errors=True)
        port = self.settings.web_port if name == "worker" else free_port()
        proc = self.pipe.worker(name, web_port=port, extra_env=self.worker_env, wait=wait)
        self.workers[name] = proc
        return proc

    def start_sink(self) -> Process:
        env = {
            "RECON_SINK_SESSION_TIMEOUT": SINK_SESSION_TIMEOUT,
            "RECON_SINK_RETRY_BACKOFF_MAX": "2s",
        }
        self.sink_proc = self.pipe.sink(http_port=self.sink_port, extra_env=env)
        return self.sink_proc

    def kill(self, proc: Process) -> float:
        """kill -9; returns when it died (time.monotonic())."""
        assert proc.proc is not None
        self.killed.add(proc.pid)
        proc.proc.kill()
        proc.proc.wait(10)
        return time.monotonic()

    def stop(self, proc: Process) -> float:
        """SIGTERM, as an orchestrator scales in; a clean stop exits 0."""
        self.killed.add(proc.pid)
        code = proc.stop()
        if code != 0:
            self.figures.problems.append(f"{proc.name} exited {code} on SIGTERM")
        return time.monotonic()

    def exits(self) -> list[str]:
        """Processes that exited without being told to."""
        procs = [*self.workers.values(), *([self.sink_proc] if self.sink_proc else [])]
        return [
            f"{p.name} exited {p.proc.returncode} (see {p.log_path})"
            for p in procs
            if p.proc is not None and p.proc.poll() is not None and p.pid not in self.killed
        ]

    def dump_stacks(self) -> str:
        """Every live worker's threads (py-spy, when installed), for a hang's post-mortem."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            return "no py-spy to dump the workers' stacks"
        out = self.pipe.work_dir / "stacks.txt"
        with out.open("ab") as f:
            for p in self.workers.values():
                if p.proc is not None and p.proc.poll() is None:
                    f.write(f"== {p.name} (pid {p.pid})\n".encode())
                    subprocess.run(
                        [spy, "dump", "--locals", "--pid", str(p.pid)],
                        stdout=f,
                        stderr=f,
                        timeout=60,
                        check=False,
                    )
        return f"stacks in {out}"

    def pause(self, low: float = 0.5, high: float = 3.0) -> None:
        """A random moment: a fault lands anywhere in the batch cycle."""
        time.sleep(self.rng.uniform(low, high))

    # -- progress --------------------------------------------------------------------------

    def worker_positions(self) -> Positions:
        """The workers' committed input offsets, and the inputs' ends: (committed, end)."""
        admin = AdminClient(self.kafka.confluent_config())
        tps = [
            TopicPartition(t, p)
            for t in (self.settings.topics.payments, self.settings.topics.ledger)
            for p in range(self.settings.partitions)
        ]
        request = [ConsumerGroupTopicPartitions(self.settings.app_id, tps)]
        result = admin.list_consumer_group_offsets(request)[self.settings.app_id].result(30)
        # A partition with no commit yet reads as a negative offset: nothing done there.
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in result.topic_partitions}

    def caught_up(self, positions: Positions, topics: list[str]) -> bool:
        return all(positions.get(k, 0) >= end for k, end in self.ends(topics).items())

    def sink_positions(self) -> Positions:
        group = f"{self.settings.app_id}-sink"
        try:
            with self.pipe.pg() as conn:
                rows = conn.execute(
                    "SELECT topic, partition, last_offset + 1 FROM recon_sink_offsets"
                    " WHERE consumer_group = %s",
                    [group],
                ).fetchall()
        except psycopg.Error:
            return {}
        return {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}

    def ends(self, topics: list[str]) -> Positions:
        c = Consumer(self.kafka.confluent_config() | {"group.id": f"probe-{uuid.uuid4().hex[:6]}"})
        try:
            return {
                (t, p): c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t in topics
                for p in range(self.settings.partitions)
            }
        finally:
            c.close()

    def wait_progress(
        self, which: str, before: Positions, since: float, timeout: float = 300
    ) -> float:
        """Seconds from ``since`` until every partition moved past ``before`` or reached its
        end (``which``: "worker" for the inputs, "sink" for the outputs)."""
        t = self.settings.topics
        if which == "worker":
            read, topics, slack = self.worker_positions, [t.payments, t.ledger], 0
        else:
            # An output partition ends in a transaction marker the sink never reads.
            read, topics, slack = self.sink_positions, [t.matched, t.exceptions, t.dlq], 1
        deadline = time.monotonic() + timeout
        while True:
            now_at, ends = read(), self.ends(topics)
            behind = [
                k
                for k, end in ends.items()
                if now_at.get(k, 0) <= before.get(k, 0) and now_at.get(k, 0) < end - slack
            ]
            if not behind:
                return time.monotonic() - since
            if time.monotonic() > deadline:
                dumps = self.dump_stacks()
                raise TimeoutError(f"{which}: no progress on {behind} after {timeout}s; {dumps}")
            if exits := self.exits():
                raise RuntimeError(f"while waiting for {which} progress: {exits}")
            time.sleep(0.2)

    # -- the end ---------------------------------------------------------------------------

    def settle(self, timeout: float = 300) -> Figures:
        """Send the rest, wait until the tables stop changing at the truth's size, tally."""
        f = self.figures
        self.traffic.finish(timeout)
        f.sent = self.traffic.sent
        want = len(self.truth.matches) + len(self.truth.exceptions)
        deadline = time.monotonic() + timeout
        with self.pipe.pg() as conn:
            while True:
                rows = conn.execute(
                    "SELECT (SELECT count(*) FROM recon_matches) + (SELECT count(*) FROM recon_exceptions),"
                    " (SELECT count(*) FROM recon_exceptions WHERE status = 'resolved')"
                ).fetchone()
                resolved = sum(
                    1 for e in self.truth.exceptions.values() if e["status"] == "resolved"
                )
                if rows == (want, resolved) or time.monotonic() > deadline or self.exits():
                    break
                time.sleep(0.5)
            time.sleep(2)  # a straggler would show now: a doubled row, or a late dead letter
            f.lost, f.doubled, f.dead_lettered, problems = tally(self.truth, conn)
        f.problems += problems
        exits = self.exits()
        f.worker_exits += sum(1 for e in exits if not e.startswith("sink"))
        f.problems += exits
        if self.verify() != 0:
            f.verify_failures += 1
            f.problems.append(f"recon verify failed; see {self.pipe.work_dir / 'verify.log'}")
        return f

    def verify(self) -> int:
        env = env_for(
            self.settings, self.pipe.work_dir / "verify", self.pipe.schema, self.pipe.database_url
        )
        with (self.pipe.work_dir / "verify.log").open("wb") as log:
            return subprocess.run(
                [sys.executable, "-m", "streams.cli", "verify", "--wait", "120"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            ).returncode


@contextmanager
def run(
    scenario: str,
    kafka: KafkaSettings,
    database_url: str,
    work_root: Path,
    sim: Simulation,
    *,
    rate: float,
    seed: int,
    partitions: int = 3,
    release: bool = True,
    worker: bool = True,
    session_timeout_ms: int = WORKER_SESSION_TIMEOUT_MS,
    worker_env: Mapping[str, str] | None = None,
) -> Iterator[Run]:
    """A pipeline with a worker (``worker``) and a sink, and its traffic flowing; on exit the
    processes stop and the topics go (streams.local_runner). Call :meth:`Run.settle` inside."""
    base = WorkerSettings(
        kafka=kafka,
        match=MATCH,
        partitions=partitions,
        batch_max=500,
        session_timeout_ms=session_timeout_ms,
        web_port=free_port(),
    )
    schema = f"f_{scenario.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    with pipeline(base, database_url, work_root, schema) as pipe:
        figures = Figures(scenario)
        traffic = Traffic(sim, kafka, pipe.settings, rate, release=release)
        r = Run(
            pipe, kafka, truth_of(sim), traffic, figures, random.Random(seed), free_port(),
            worker_env=dict(worker_env or {}),
        )  # fmt: skip
        if worker:
            r.start_worker()
        r.start_sink()
        traffic.start()
        try:
            yield r
        finally:
            traffic.hurry()
            traffic.release.set()
    with psycopg.connect(database_url, autocommit=True) as conn:
        if figures.ok and not os.environ.get("RECON_FAULTS_KEEP"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

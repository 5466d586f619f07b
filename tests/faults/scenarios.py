"""The fault scenarios of `make faults`, each in a short form (`make test`) and a full one.

Every scenario drives simulated traffic with its ground truth through a worker and a sink
(tests/faults/harness.py), injects its fault while the traffic flows, settles, and checks the
PostgreSQL tables against the truth and ``recon verify``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.local_runner import free_port, pipeline, worker_metric
from streams.settings import KafkaSettings
from streams.simulate.scenarios import simulate
from streams.worker.settings import WorkerSettings
from tests.faults.harness import MATCH, ROOT, Figures, Run, run

# Records per second while faults are injected: a steady load a 2-core machine with the
# broker and the database on it carries with room to spare, so recovery is not queueing.
RATE = 150.0
# Seconds of traffic to plan per trial (a restart waits out the session timeout, ~10 s).
SECONDS_PER_TRIAL = 25


@dataclass(frozen=True)
class Env:
    """Where the scenarios run, and how long."""

    kafka: KafkaSettings
    database_url: str
    work_root: Path
    full: bool
    seed: int = 7

    @property
    def local_broker(self) -> bool:
        """The broker is ours to kill (.ci/kafka.sh), not a cluster named by the environment."""
        return not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")

    @property
    def local_postgres(self) -> bool:
        return not os.environ.get("DATABASE_URL")


def _records_for(trials: int) -> int:
    return int(RATE * SECONDS_PER_TRIAL * trials) + 500


def _runs(env: Env, full: tuple[int, int], short: tuple[int, int]) -> list[int]:
    """Trials per run: ``(runs, trials each)`` of the full or the short form."""
    n, each = full if env.full else short
    return [each] * n


def _kill_worker_trials(r: Run, trials: int) -> None:
    """kill -9 of the worker at random moments, restarted at once; every third restart (one
    in every run, the short one included) on a deleted data directory."""
    for trial in range(trials):
        r.pause()
        wipe = trial % 3 == 1
        t0 = r.kill(r.workers["worker"])
        before = r.worker_positions()
        r.start_worker("worker", wipe=wipe, wait=False)
        took = r.wait_progress("worker", before, t0)
        (r.figures.recovery_empty_s if wipe else r.figures.recovery_s).append(took)
        r.figures.trials += 1


def worker_kill(env: Env) -> Figures:
    """kill -9 of the worker at random moments; every third restart on a deleted data directory."""
    total = Figures("worker kill -9")
    for i, trials in enumerate(_runs(env, full=(5, 10), short=(1, 2))):
        sim = simulate(_records_for(trials), config=MATCH, seed=env.seed + i)
        with run(
            "worker-kill",
            env.kafka,
            env.database_url,
            env.work_root,
            sim,
            rate=RATE,
            seed=env.seed + i,
        ) as r:
            _kill_worker_trials(r, trials)
            total.add(r.settle())
    return total


def worker_kill_static(env: Env) -> Figures:
    """kill -9 of a worker with static group membership (RECON_GROUP_INSTANCE_ID) and the
    default 60 s session timeout: the restart takes its partitions back without waiting."""
    total = Figures("worker kill -9, static member")
    trials = 10 if env.full else 2
    sim = simulate(_records_for(trials), config=MATCH, seed=env.seed + 60)
    with run(
        "worker-static", env.kafka, env.database_url, env.work_root, sim, rate=RATE, seed=env.seed,
        session_timeout_ms=WorkerSettings().session_timeout_ms,
        worker_env={"RECON_GROUP_INSTANCE_ID": "worker-0"},
    ) as r:  # fmt: skip
        _kill_worker_trials(r, trials)
        total.add(r.settle())
    return total


def sink_kill(env: Env) -> Figures:
    """kill -9 of the sink at random moments."""
    total = Figures("sink kill -9")
    for i, trials in enumerate(_runs(env, full=(5, 10), short=(1, 3))):
        sim = simulate(_records_for(trials) // 2, config=MATCH, seed=env.seed + 10 + i)
        with run(
            "sink-kill",
            env.kafka,
            env.database_url,
            env.work_root,
            sim,
            rate=RATE,
            seed=env.seed + i,
        ) as r:
            for _ in range(trials):
                r.pause(0.5, 4.0)
                assert r.sink_proc is not None
                t0 = r.kill(r.sink_proc)
                before = r.sink_positions()
                r.start_sink()
                r.figures.recovery_s.append(r.wait_progress("sink", before, t0))
                r.figures.trials += 1
            total.add(r.settle())
    return total


def _ci(script: str, action: str) -> None:
    subprocess.run(
        [str(ROOT / ".ci" / script), action], check=True, capture_output=True, timeout=300
    )


def postgres_outage(env: Env) -> Figures:
    """PostgreSQL stopped under load (30 s in the full run), then started again."""
    total = Figures("PostgreSQL stopped")
    if not env.local_postgres:
        total.notes["skipped"] = "DATABASE_URL names a server this suite must not stop"
        return total
    down_s = 30.0 if env.full else 8.0
    trials = 3 if env.full else 1
    sim = simulate(_records_for(trials) // 2, config=MATCH, seed=env.seed + 20)
    with run(
        "pg-outage", env.kafka, env.database_url, env.work_root, sim, rate=RATE, seed=env.seed
    ) as r:
        for _ in range(trials):
            r.pause(2.0, 4.0)
            _ci("postgres.sh", "down")
            time.sleep(down_s)
            _ci("postgres.sh", "up")
            t0 = time.monotonic()
            before = r.sink_positions()
            r.figures.recovery_s.append(r.wait_progress("sink", before, t0))
            r.figures.trials += 1
        total.add(r.settle())
    total.notes["down_s"] = down_s
    return total


def _broker_pid() -> int:
    return int((ROOT / ".local" / "kafka" / "kafka.pid").read_text().strip())


def _error_lines(r: Run) -> int:
    """ERROR and CRITICAL lines in the logs of every worker so far."""
    count = 0
    for proc in r.workers.values():
        for line in proc.log_path.read_bytes().splitlines():
            count += b'"level": "ERROR"' in line or b'"level": "CRITICAL"' in line
    return count


def broker_kill(env: Env) -> Figures:
    """kill -9 of the broker under load, started again after a few seconds."""
    total = Figures("broker kill -9")
    if not env.local_broker:
        total.notes["skipped"] = "KAFKA_BOOTSTRAP_SERVERS names a cluster this suite must not kill"
        return total
    trials = 3 if env.full else 1
    sim = simulate(_records_for(trials), config=MATCH, seed=env.seed + 30)
    # The default session timeout (60 s): a worker keeps its membership through an outage
    # shorter than that, and so its partitions and the batch it was committing.
    with run(
        "broker-kill", env.kafka, env.database_url, env.work_root, sim, rate=RATE, seed=env.seed,
        session_timeout_ms=WorkerSettings().session_timeout_ms,
    ) as r:  # fmt: skip
        for _ in range(trials):
            r.pause(2.0, 4.0)
            errors_before = _error_lines(r)
            os.kill(_broker_pid(), signal.SIGKILL)
            time.sleep(5)
            _ci("kafka.sh", "up")
            t0 = time.monotonic()
            before_w, before_s = r.worker_positions(), r.sink_positions()
            took = max(
                r.wait_progress("worker", before_w, t0), r.wait_progress("sink", before_s, t0)
            )
            r.figures.recovery_s.append(took)
            r.figures.notes.setdefault("worker_error_lines", []).append(
                _error_lines(r) - errors_before
            )
            r.figures.trials += 1
        total.add(r.settle())
    return total


def rebalance(env: Env) -> Figures:
    """Workers 1 -> 2 -> 1 under load: the second leaves by SIGTERM, then by kill -9."""
    total = Figures("rebalance 1-2-1")
    rounds = 5 if env.full else 1
    sim = simulate(_records_for(4 * rounds), config=MATCH, seed=env.seed + 40)
    with run(
        "rebalance", env.kafka, env.database_url, env.work_root, sim, rate=RATE, seed=env.seed
    ) as r:
        for i in range(rounds):
            for how in ("sigterm", "kill-9"):
                r.pause()
                before = r.worker_positions()
                second = r.start_worker(f"second-{i}-{how}")  # waits until it is Ready
                r.figures.recovery_s.append(r.wait_progress("worker", before, time.monotonic()))
                r.pause()
                t0 = r.stop(second) if how == "sigterm" else r.kill(second)
                before = r.worker_positions()
                r.figures.recovery_s.append(r.wait_progress("worker", before, t0))
                r.figures.trials += 2
        total.add(r.settle())
    return total


def released_backlog(env: Env) -> Figures:
    """A backlog of payments without their ledger entries, released by one watermark step;
    the worker is killed (kill -9) in the middle of the release."""
    total = Figures("released backlog, kill -9")
    count = 100_000 if env.full else 5_000
    kills = 3 if env.full else 1
    sim = simulate(count, config=MATCH, seed=env.seed + 50, mix={"missing_ledger": 1})
    # Transactions of 500 sweep steps: a kill lands inside the release, not after it.
    with run(
        "backlog", env.kafka, env.database_url, env.work_root, sim, rate=1e9, seed=env.seed,
        release=False, worker_env={"RECON_SWEEP_CHUNK": "500"},
    ) as r:  # fmt: skip
        ins = [r.settings.topics.payments, r.settings.topics.ledger]
        deadline = time.monotonic() + 900
        while r.traffic.sent < len(sim.records) or not r.caught_up(r.worker_positions(), ins):
            assert time.monotonic() < deadline, "the backlog was not taken in"
            time.sleep(1)
        r.figures.notes["backlog"] = len(sim.records)
        r.traffic.release.set()
        port = r.settings.web_port  # the restarted worker's too

        def releasing() -> bool:
            return worker_metric(port, "recon_exceptions_total") > 0

        def released() -> bool:
            return releasing() or r.caught_up(r.worker_positions(), ins)

        # Each kill lands while the (restarted) worker is sending the release; recovery is
        # until the next worker sends again (or has finished it).
        _wait_for(released, 300)
        for k in range(kills):
            if not releasing():
                break  # the release was done before this kill could land inside it
            r.pause(0.0, 0.5)
            t0 = r.kill(r.workers["worker"])
            r.start_worker("worker", wipe=k % 2 == 1, wait=False)
            _wait_for(released, 900)
            r.figures.recovery_s.append(time.monotonic() - t0)
            r.figures.trials += 1
        total.add(r.settle(timeout=900))
    return total


def fuzz(env: Env) -> Figures:
    """The fuzz corpus (tests/fuzz: >= 10,000 bad inputs in the full run) mixed with valid
    traffic, through one worker and one sink that must never exit."""
    from tests.fuzz.run import FUZZ_MATCH, run_fuzz

    total = Figures("fuzz corpus")
    count = 10_000 if env.full else 320
    base = WorkerSettings(kafka=env.kafka, match=FUZZ_MATCH, partitions=3, web_port=free_port())
    schema = f"f_fuzz_{uuid.uuid4().hex[:8]}"
    with pipeline(base, env.database_url, env.work_root, schema) as pipe:
        report = run_fuzz(pipe, env.kafka, count, env.seed, valid=None if env.full else 600)
    total.trials = 1
    total.sent = report["sent"]
    total.lost, total.doubled = report["lost"], report["doubled"]
    total.dead_lettered = report["dead_lettered"]
    total.worker_exits = report["worker_exits"]
    total.verify_failures = int(report["verify_findings"] > 0)
    total.problems += report["problems"]
    if report["wrong_reason"]:
        total.problems.append(f"{report['wrong_reason']} records with another reason than expected")
    if report["by_reason"] != report["expected_by_reason"]:
        total.problems.append(f"by reason {report['by_reason']} != {report['expected_by_reason']}")
    total.notes.update(
        bad_sent=report["bad_sent"], refused=report["refused"], by_reason=report["by_reason"]
    )
    return total


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout}s")
        time.sleep(0.05)


SCENARIOS: dict[str, Callable[[Env], Figures]] = {
    "worker-kill": worker_kill,
    "worker-kill-static": worker_kill_static,
    "sink-kill": sink_kill,
    "postgres-outage": postgres_outage,
    "broker-kill": broker_kill,
    "rebalance": rebalance,
    "backlog": released_backlog,
    "fuzz": fuzz,
}

"""Run the real worker as a subprocess against the real broker, and read its outputs."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.contract.codec import decode_dead_letter, decode_exception, decode_match
from streams.contract.model import DeadLetter, ExceptionRecord, MatchRecord
from streams.engine.config import HOUR_MS, MatchConfig
from streams.local_runner import env_for
from streams.settings import KafkaSettings, TopicNames, database_url_from_env
from streams.worker.settings import WorkerSettings

# Timeouts fire within a run: a 1 h window over a simulation that spans many hours.
TEST_MATCH = MatchConfig(match_window_ms=HOUR_MS, amount_tolerance_minor=5, amount_tolerance_bps=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def worker_env(
    settings: WorkerSettings, data_dir: Path, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    # The worker needs no database; the pipeline's environment builder covers the rest.
    env = env_for(settings, data_dir, schema="public", database_url=database_url_from_env())
    env["RECON_WEB_PORT"] = str(port)
    env.update(extra or {})
    return env


@dataclass
class WorkerProcess:
    settings: WorkerSettings
    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "worker",
                "--no-create-topics",
                "--loglevel",
                "info",
            ],
            env=worker_env(self.settings, self.data_dir, self.port, self.extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            with self.log_path.open("rb") as f:
                f.seek(max(0, offset - 1))
                if b"[^Worker]: Ready" in f.read():
                    return self
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 60) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def unique_worker_settings(
    kafka: KafkaSettings, base: WorkerSettings, partitions: int = 3
) -> WorkerSettings:
    tag = uuid.uuid4().hex[:10]
    topics = TopicNames(
        payments=f"t.{tag}.payments",
        ledger=f"t.{tag}.ledger",
        matched=f"t.{tag}.matched",
        exceptions=f"t.{tag}.exceptions",
        dlq=f"t.{tag}.dlq",
    )
    return replace(
        base, app_id=f"recon-test-{tag}", kafka=kafka, topics=topics, partitions=partitions
    )


@dataclass
class Outputs:
    matches: list[MatchRecord] = field(default_factory=list)
    exceptions: list[ExceptionRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class OutputReader:
    """Reads the three output topics from the beginning, without a group."""

    def __init__(self, kafka: KafkaSettings, topics: TopicNames, partitions: int) -> None:
        self._consumer = Consumer(
            {
                **kafka.confluent_config(),
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        self._topics = topics
        self._consumer.assign(
            [
                TopicPartition(t, p, 0)
                for t in (topics.matched, topics.exceptions, topics.dlq)
                for p in range(partitions)
            ]
        )
        self.out = Outputs()

    def read_until(self, done: Callable[[Outputs], bool], timeout: float = 120) -> Outputs:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(self.out):
            self.drain(1.0)
        return self.out

    def drain(self, timeout: float = 1.0) -> None:
        for msg in self._consumer.consume(5000, timeout):
            if msg.error():
                continue
            topic, value = msg.topic(), msg.value()
            assert value is not None
            if topic == self._topics.matched:
                self.out.matches.append(decode_match(value))
            elif topic == self._topics.exceptions:
                self.out.exceptions.append(decode_exception(value))
            else:
                self.out.dead_letters.append(decode_dead_letter(value))

    def settle(self, quiet: float = 3.0, timeout: float = 60) -> Outputs:
        """Read until nothing new arrives for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            size = len(self.out.matches) + len(self.out.exceptions) + len(self.out.dead_letters)
            if size == last:
                break
            last = size
            end = time.monotonic() + quiet
            while time.monotonic() < end:
                self.drain(0.5)
        return self.out

    def close(self) -> None:
        self._consumer.close()

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams.settings import KafkaSettings
from streams.worker.settings import WorkerSettings
from streams.worker.topics import create_topics, topic_names
from tests.streams.worker.harness import (
    TEST_MATCH,
    OutputReader,
    WorkerProcess,
    unique_worker_settings,
)


@pytest.fixture
def worker_settings(kafka: KafkaSettings, kafka_admin: AdminClient) -> Iterator[WorkerSettings]:
    settings = unique_worker_settings(kafka, WorkerSettings(match=TEST_MATCH))
    create_topics(settings)
    yield settings
    for future in kafka_admin.delete_topics(topic_names(settings), operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


@pytest.fixture
def start_worker(
    worker_settings: WorkerSettings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str = "w1", data_dir: Path | None = None, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(
            worker_settings,
            data_dir or tmp_path / name,
            tmp_path / f"{name}.log",
            extra_env=dict(extra_env),
        ).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def outputs(worker_settings: WorkerSettings) -> Iterator[OutputReader]:
    reader = OutputReader(worker_settings.kafka, worker_settings.topics, worker_settings.partitions)
    yield reader
    reader.close()

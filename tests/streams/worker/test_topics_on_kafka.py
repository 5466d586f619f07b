"""``recon topics create`` on the real broker: configs, idempotence and refusals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.cli import main
from streams.settings import KafkaSettings
from streams.worker.exceptions import TopologyError
from streams.worker.settings import WorkerSettings
from streams.worker.topics import (
    changelog_topic_name,
    create_topics,
    current_configs,
    topic_names,
)
from tests.streams.worker.harness import unique_worker_settings


@pytest.fixture
def settings(kafka: KafkaSettings, kafka_admin: AdminClient) -> Iterator[WorkerSettings]:
    s = unique_worker_settings(kafka, WorkerSettings(), partitions=2)
    yield s
    for future in kafka_admin.delete_topics(topic_names(s), operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def pre_create(admin: AdminClient, name: str, partitions: int, config: dict[str, str]) -> None:
    spec = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)
    admin.create_topics([spec])[name].result(30)


def test_create_sets_retention_and_compaction_and_is_idempotent(
    settings: WorkerSettings, kafka_admin: AdminClient
) -> None:
    first = create_topics(settings)
    assert set(first.values()) == {"created"}
    configs = current_configs(kafka_admin, topic_names(settings))
    t = settings.topics
    for name in (t.payments, t.ledger, t.matched, t.exceptions, t.dlq):
        assert configs[name] == {"cleanup.policy": "delete", "retention.ms": "-1"}, name
    assert configs[changelog_topic_name(settings)]["cleanup.policy"] == "compact"
    assert set(create_topics(settings).values()) == {"exists"}


def test_a_partition_count_mismatch_is_refused_naming_the_topic(
    settings: WorkerSettings, kafka_admin: AdminClient
) -> None:
    pre_create(kafka_admin, settings.topics.ledger, 1, {})
    with pytest.raises(TopologyError, match=rf"{settings.topics.ledger}: 1"):
        create_topics(settings)


def test_a_changelog_that_is_not_compacted_is_refused(
    settings: WorkerSettings, kafka_admin: AdminClient
) -> None:
    pre_create(kafka_admin, changelog_topic_name(settings), 2, {"cleanup.policy": "delete"})
    with pytest.raises(TopologyError, match="must be compacted"):
        create_topics(settings)


def test_a_short_input_retention_is_reported(
    settings: WorkerSettings, kafka_admin: AdminClient
) -> None:
    pre_create(kafka_admin, settings.topics.payments, 2, {"retention.ms": "86400000"})
    status = create_topics(settings)[settings.topics.payments]
    assert status == "exists; retention.ms is 86400000, expected -1"


def test_the_command_exits_2_with_the_reason_on_a_mismatch(
    settings: WorkerSettings,
    kafka_admin: AdminClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pre_create(kafka_admin, settings.topics.payments, 3, {})
    t = settings.topics
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RECON_APP_ID": settings.app_id,
        "RECON_PARTITIONS": "2",
        "RECON_TOPIC_PAYMENTS": t.payments,
        "RECON_TOPIC_LEDGER": t.ledger,
        "RECON_TOPIC_MATCHED": t.matched,
        "RECON_TOPIC_EXCEPTIONS": t.exceptions,
        "RECON_TOPIC_DLQ": t.dlq,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["topics", "create"]) == 2
    assert f"{t.payments}: 3" in capsys.readouterr().err

"""JSON log lines: one object per line with the fixed fields and the correlation fields, and
no secret in any line, whoever logs it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest

from streams import logs

PASSWORD = "Zq8-unlikely-pw!"


class Captured:
    """What the handler wrote: pytest swaps sys.stderr per phase, so read it through capsys."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield Captured(capsys)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(out: Captured) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_correlation_fields(captured: Captured) -> None:
    logs.configure(level="DEBUG", fmt="json", env={})
    logging.getLogger("streams.worker.outcomes").debug(
        "match %s", "m1", extra={"match_id": "m1", "reference": "INV-7", "partition": 3}
    )
    (line,) = lines(captured)
    assert line["level"] == "DEBUG"
    assert line["logger"] == "streams.worker.outcomes"
    assert line["message"] == "match m1"
    assert (line["match_id"], line["reference"], line["partition"]) == ("m1", "INV-7", 3)
    assert str(line["timestamp"]).startswith("20")


def test_level_comes_from_the_environment(captured: Captured) -> None:
    logs.configure(env={"RECON_LOG_LEVEL": "warning"})
    log = logging.getLogger("recon.test")
    log.info("quiet")
    log.warning("loud")
    assert [line["message"] for line in lines(captured)] == ["loud"]


def test_text_format_on_request(captured: Captured) -> None:
    logs.configure(env={"RECON_LOG_FORMAT": "text"})
    logging.getLogger("recon.test").warning("plain")
    assert captured.getvalue().rstrip().endswith("WARNING recon.test: plain")


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_URL": f"postgresql://recon:{PASSWORD}@db:5432/recon"},
        {"DATABASE_URL": f"host=db user=recon password={PASSWORD}"},
        {"KAFKA_SASL_PASSWORD": PASSWORD},
        {"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"user:{PASSWORD}"},
    ],
)
def test_secrets_are_masked_in_messages_arguments_and_tracebacks(
    captured: Captured, env: dict[str, str]
) -> None:
    logs.configure(env=env)
    log = logging.getLogger("some.library")
    log.error("connecting to %s", next(iter(env.values())))
    try:
        raise ConnectionError(f"refused: password={PASSWORD}")
    except ConnectionError:
        log.exception("failed")
    text = captured.getvalue()
    assert PASSWORD not in text
    assert text.count(logs.MASK) >= 2
    assert len(lines(captured)) == 2  # still one JSON object per line


def test_a_percent_encoded_password_is_masked_in_both_forms() -> None:
    secrets = logs.secrets_from_env({"DATABASE_URL": "postgresql://u:p%40ss%2Fword@h/db"})
    assert "p%40ss%2Fword" in secrets
    assert "p@ss/word" in secrets


def test_a_short_password_is_masked_by_its_place_not_in_every_word(captured: Captured) -> None:
    logs.configure(env={"DATABASE_URL": "postgresql://recon:recon@db/recon"})
    log = logging.getLogger("recon.test")
    log.warning("topic recon-state of app recon")
    log.warning("cannot connect to postgresql://recon:recon@db/recon (password=recon)")
    first, second = (line["message"] for line in lines(captured))
    assert first == "topic recon-state of app recon"
    assert second == "cannot connect to postgresql://recon:***@db/recon (password=***)"


def test_a_repeated_warning_is_held_back_and_counted() -> None:
    now = [0.0]
    repeat = logs.RepeatFilter(window_s=30, clock=lambda: now[0])

    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("librdkafka", level, "x", 1, msg, None, None)

    assert repeat.filter(record("broker down"))
    passed = 0
    for _ in range(1000):  # a minute of reconnect attempts
        now[0] += 0.02
        passed += repeat.filter(record("broker down"))
    assert passed == 0
    assert repeat.filter(record("another thing"))  # other messages are not held back
    assert repeat.filter(record("debug chatter", logging.INFO))
    now[0] = 31.0
    again = record("broker down")
    assert repeat.filter(again)
    assert again.getMessage() == "broker down (and 1000 more like it in 31s)"

"""``recon decode``: a record from a file, decoded as the worker or the sink reads it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.contract.codec import encode_match
from streams.contract.model import Flow, MatchRecord, Rule

PAYMENT = {
    "event_id": "e-1",
    "reference": "REF-1",
    "amount_minor": 1250,
    "currency": "EUR",
    "event_time": "2026-01-01T00:00:00Z",
    "kind": "payment",
}


def decode(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["decode", *args])
    return code, capsys.readouterr().out.strip()


def test_an_input_event_decodes_with_its_reference_as_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "p.json").write_bytes(orjson.dumps(PAYMENT))
    code, out = decode(capsys, "--topic", "payments", "--key", "REF-1", str(tmp_path / "p.json"))
    assert code == 0
    line = orjson.loads(out)
    assert line["record"] == "InputEvent"
    assert line["value"]["reference"] == "REF-1"
    assert line["value"]["event_time_ms"] == 1_767_225_600_000


def test_a_rejected_input_prints_the_dead_letter_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "p.json").write_bytes(orjson.dumps(PAYMENT))
    assert decode(capsys, "--topic", "payments", str(tmp_path / "p.json")) == (
        1,
        "dead letter KEY_MISMATCH: record has no key; expected the reference",
    )
    (tmp_path / "bad.json").write_bytes(orjson.dumps({**PAYMENT, "currency": "XXY"}))
    code, out = decode(capsys, "--topic", "payments", "--key", "REF-1", str(tmp_path / "bad.json"))
    assert code == 1
    assert out.startswith("dead letter UNKNOWN_CURRENCY:")


def test_an_output_record_decodes_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    match = MatchRecord(
        "m-1", "REF-1", Flow.PAYMENT, Rule.EXACT, "EUR", 1250, 1250, 0,
        ("e-1",), ("l-1",), 1_767_225_600_000, 1_767_225_660_000, None,
    )  # fmt: skip
    stdin = io.TextIOWrapper(io.BytesIO(encode_match(match)))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out = decode(capsys, "--topic", "recon.matched", "-")
    assert code == 0
    line = orjson.loads(out)
    assert line["record"] == "MatchRecord"
    assert line["value"]["match_id"] == "m-1"

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not avro")))
    code, out = decode(capsys, "--topic", "recon.matched", "-")
    assert code == 1
    assert out.startswith("not a record of recon.matched:")

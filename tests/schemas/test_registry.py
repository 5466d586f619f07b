"""The .avsc files, the schema registry and the evolution rules."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from fastavro.schema import to_parsing_canonical_form
from fastavro.utils import generate_one

from streams.contract import (
    InputDecoder,
    OutputCodec,
    Rejection,
    RejectReason,
    SchemaError,
    SchemaRegistry,
    decode_avro,
    default_registry,
    encode_single_object,
)
from streams.contract.model import Flow, InputEvent, MatchRecord, Rule, Side
from streams.contract.registry import SCHEMAS_DIR_ENV, default_schemas_dir

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
NAMES = {"PaymentEvent", "LedgerEvent", "Heartbeat", "Match", "Exception", "DeadLetter"}
ALL_FILES = sorted(SCHEMAS.glob("*/v*.avsc"))


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO exactly as written in the Avro specification."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def test_schema_dir_is_the_default() -> None:
    assert default_schemas_dir().resolve() == SCHEMAS.resolve()


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_avsc_parses(path: Path) -> None:
    raw = orjson.loads(path.read_bytes())
    parsed = fastavro.parse_schema(raw)
    assert raw["namespace"] == "recon.events"
    assert raw["name"] == path.parent.name
    assert parsed["name"] == f"recon.events.{path.parent.name}"


def test_registry_knows_every_file() -> None:
    reg = default_registry()
    assert set(reg.names()) == NAMES
    assert len(list(reg)) == len(ALL_FILES)
    for sv in reg:
        assert reg.by_fingerprint(sv.fingerprint) is sv
        assert sv.fingerprint == crc64_avro(
            to_parsing_canonical_form(fastavro.parse_schema(sv.raw)).encode()
        ).to_bytes(8, "little")
        assert sv.header == b"\xc3\x01" + sv.fingerprint


VERSIONS = [(sv.name, sv.version) for sv in default_registry()]


@pytest.mark.parametrize(("name", "version"), VERSIONS, ids=[f"{n}-v{v}" for n, v in VERSIONS])
def test_each_version_reads_with_the_current_one(name: str, version: int) -> None:
    reg = default_registry()
    writer = next(sv for sv in reg.versions(name) if sv.version == version)
    current = reg.current(name)
    current_fields = {f["name"]: f for f in current.raw["fields"]}
    for seed_datum in (generate_one(writer.parsed) for _ in range(20)):
        data = encode_single_object(writer, seed_datum)
        schema, datum = decode_avro(data)
        assert schema is current
        for field, value in datum.items():
            if field in seed_datum:
                assert value == seed_datum[field], field
            else:
                assert value == current_fields[field]["default"], field
        # and through the typed decoders of the contract
        if name in ("Match", "Exception", "DeadLetter"):
            decode = getattr(OutputCodec(reg), f"decode_{_snake(name)}")
            decode(data)
        else:
            for side in Side:
                result = InputDecoder(reg).decode(side, None, data, 0)
                if isinstance(result, Rejection):
                    assert result.reason not in (RejectReason.BAD_AVRO,)


def _snake(name: str) -> str:
    return {"Match": "match", "Exception": "exception", "DeadLetter": "dead_letter"}[name]


# -- synthetic evolution, in a copy of the schema directory ---------------------------


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, root, ignore=shutil.ignore_patterns("*.md"))
    return root


def _add_version(root: Path, name: str, change: Any) -> None:
    versions = sorted(root.joinpath(name).glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    raw = orjson.loads(versions[-1].read_bytes())
    change(raw)
    root.joinpath(name, f"v{len(versions) + 1}.avsc").write_bytes(orjson.dumps(raw))


def _field(raw: dict[str, Any], name: str) -> dict[str, Any]:
    field: dict[str, Any] = next(f for f in raw["fields"] if f["name"] == name)
    return field


def test_synthetic_v2_reads_v1_data(schema_copy: Path) -> None:
    reg_v1 = SchemaRegistry(schema_copy)
    payment = {
        "event_id": "e",
        "reference": "R",
        "amount_minor": 7,
        "currency": "GBP",
        "event_time": 1000,
        "kind": "payment",
        "source": "s",
        "metadata": None,
    }
    v1_input = encode_single_object(reg_v1.current("PaymentEvent"), payment)
    match = MatchRecord("m", "R", Flow.REFUND, Rule.LATE, "GBP", 1, 2, -1, ("a",), (), 5, 6, "x")
    v1_match = OutputCodec(reg_v1).encode_match(match)

    def widen_payment(raw: dict[str, Any]) -> None:
        raw["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
        _field(raw, "kind")["type"]["symbols"].append("chargeback")

    _add_version(schema_copy, "PaymentEvent", widen_payment)
    _add_version(
        schema_copy,
        "Match",
        lambda raw: raw["fields"].append({"name": "note", "type": "string", "default": ""}),
    )
    reg = SchemaRegistry(schema_copy)
    assert reg.current("PaymentEvent").version == 2
    assert len(reg.versions("Match")) == 2

    decoder = InputDecoder(reg)
    v2_input = encode_single_object(reg.current("PaymentEvent"), {**payment, "channel": "web"})
    from_v1 = decoder.decode(Side.PAYMENT, b"R", v1_input, 3)
    from_v2 = decoder.decode(Side.PAYMENT, b"R", v2_input, 3)
    assert isinstance(from_v1, InputEvent)
    assert from_v1 == from_v2  # unknown-to-the-contract fields are not part of the hash
    widened = decoder.decode(
        Side.PAYMENT,
        b"R",
        encode_single_object(reg.current("PaymentEvent"), {**payment, "kind": "chargeback"}),
        3,
    )
    assert isinstance(widened, Rejection)
    assert widened.reason is RejectReason.BAD_VALUE  # schema allows it, the contract not yet

    codec = OutputCodec(reg)
    assert codec.decode_match(v1_match) == match
    v2_match = codec.encode_match(match)
    assert v2_match[2:10] == reg.current("Match").fingerprint
    assert codec.decode_match(v2_match) == match
    assert decode_avro(v2_match, reg)[1]["note"] == ""


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("Match", lambda raw: raw["fields"].pop(), "removes or renames"),
        ("Match", lambda raw: _field(raw, "rule").update(name="rule_name"), "removes or renames"),
        (
            "Heartbeat",
            lambda raw: raw["fields"].append({"name": "x", "type": "long"}),
            "without a default",
        ),
        ("Heartbeat", lambda raw: raw.update(name="Beat"), "does not match directory"),
        ("Heartbeat", lambda raw: raw.update(namespace="other"), "full name changed"),
        ("Heartbeat", lambda raw: raw.update(doc="only a doc change"), "same canonical form"),
        ("Heartbeat", lambda raw: _field(raw, "event_time").update(type="nonsense"), "invalid"),
        ("Heartbeat", lambda raw: raw.update(type="enum"), "must be a record"),
    ],
)
def test_rule_violations_are_schema_errors(
    schema_copy: Path, name: str, change: Any, message: str
) -> None:
    _add_version(schema_copy, name, change)
    with pytest.raises(SchemaError, match=message):
        SchemaRegistry(schema_copy)


def test_bad_files_are_schema_errors(schema_copy: Path, tmp_path: Path) -> None:
    bad = schema_copy / "Heartbeat" / "v2.avsc"
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match="cannot read"):
        SchemaRegistry(schema_copy)
    bad.rename(schema_copy / "Heartbeat" / "version2.avsc")
    with pytest.raises(SchemaError, match=r"v<N>\.avsc"):
        SchemaRegistry(schema_copy)
    with pytest.raises(SchemaError, match="not found"):
        SchemaRegistry(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match="no schemas"):
        SchemaRegistry(tmp_path / "empty")
    with pytest.raises(SchemaError, match="unknown schema"):
        default_registry().current("Nope")


def test_schemas_dir_env(schema_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(schema_copy))
    assert SchemaRegistry().root == schema_copy

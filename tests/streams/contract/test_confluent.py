"""Confluent wire format through confluent-kafka's in-process ``mock://`` registry."""

from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.contract import InputDecoder, Rejection, RejectReason, default_registry
from streams.contract.model import Flow, Heartbeat, InputEvent, Side

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    # Hard dependencies (confluent-kafka[schemaregistry]): a missing one fails, never skips.
    import confluent_kafka.schema_registry as sr
    import confluent_kafka.schema_registry.avro as sr_avro
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
PAYMENT = {
    "event_id": "evt-1",
    "reference": "REF-1",
    "amount_minor": 1234,
    "currency": "EUR",
    "event_time": 1772355600000,
    "kind": "refund",
    "source": None,
    "metadata": {"a": "b"},
}


@pytest.fixture
def client(request: pytest.FixtureRequest) -> Any:
    return sr.SchemaRegistryClient.new_client({"url": f"mock://{request.node.name}"})


def _serialize(client: Any, schema_str: str, datum: dict[str, Any], topic: str) -> bytes:
    serializer = sr_avro.AvroSerializer(client, schema_str)
    data: bytes = serializer(datum, SerializationContext(topic, MessageField.VALUE))
    assert data[0] == 0
    return data


def test_confluent_payment_matches_single_object(client: Any) -> None:
    schema_str = (SCHEMAS / "PaymentEvent" / "v1.avsc").read_text()
    data = _serialize(client, schema_str, PAYMENT, "payments")
    decoder = InputDecoder(schema_registry_client=client)
    result = decoder.decode(Side.PAYMENT, b"REF-1", data, 5)
    assert isinstance(result, InputEvent), result
    assert result.flow is Flow.REFUND
    assert result.event_time_ms == 1772355600000
    json_result = decoder.decode(Side.PAYMENT, b"REF-1", orjson.dumps(PAYMENT), 5)
    assert json_result == result
    # second record: schema id served from the decoder's cache
    assert decoder.decode(Side.PAYMENT, b"REF-1", data, 6) == InputEvent(
        **{**{f.name: getattr(result, f.name) for f in fields(result)}, "offset": 6}
    )
    wrong_side = decoder.decode(Side.LEDGER, b"REF-1", data, 5)
    assert isinstance(wrong_side, Rejection)
    assert wrong_side.reason is RejectReason.UNKNOWN_SCHEMA


def test_confluent_heartbeat_on_either_input(client: Any) -> None:
    schema_str = (SCHEMAS / "Heartbeat" / "v1.avsc").read_text()
    data = _serialize(client, schema_str, {"event_time": 99}, "ledger")
    decoder = InputDecoder(schema_registry_client=client)
    assert decoder.decode(Side.LEDGER, None, data, 1) == Heartbeat(Side.LEDGER, 99, 1)
    assert decoder.decode(Side.PAYMENT, None, data, 1) == Heartbeat(Side.PAYMENT, 99, 1)


def test_confluent_writer_schema_unknown_to_us_is_resolved(client: Any) -> None:
    """A producer's newer schema (an extra field with a default) reads with our current one."""
    raw = orjson.loads((SCHEMAS / "LedgerEvent" / "v1.avsc").read_bytes())
    raw["fields"].append({"name": "channel", "type": "string", "default": "web"})
    datum = {
        "event_id": "l-1",
        "reference": "REF-1",
        "amount_minor": 5,
        "currency": "USD",
        "event_time": 1,
        "direction": "debit",
        "channel": "pos",
    }
    data = _serialize(client, orjson.dumps(raw).decode(), datum, "ledger")
    result = InputDecoder(schema_registry_client=client).decode(Side.LEDGER, b"REF-1", data, 0)
    assert isinstance(result, InputEvent), result
    assert (result.amount_minor, result.flow) == (5, Flow.REFUND)


def test_confluent_unknown_and_foreign_schemas(client: Any) -> None:
    decoder = InputDecoder(schema_registry_client=client)
    unknown = decoder.decode(Side.PAYMENT, b"k", b"\x00\x00\x00\x03\xe7\x02", 0)
    assert isinstance(unknown, Rejection)
    assert unknown.reason is RejectReason.UNKNOWN_SCHEMA
    foreign = '{"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}'
    data = _serialize(client, foreign, {"x": 1}, "payments")
    rejected = decoder.decode(Side.PAYMENT, b"k", data, 0)
    assert isinstance(rejected, Rejection)
    assert rejected.reason is RejectReason.UNKNOWN_SCHEMA
    truncated = decoder.decode(Side.PAYMENT, b"k", b"\x00\x00", 0)
    assert isinstance(truncated, Rejection)
    assert truncated.reason is RejectReason.BAD_AVRO


def test_without_client_confluent_is_unknown() -> None:
    assert default_registry().current("PaymentEvent")  # registry loads without a client
    result = InputDecoder().decode(Side.PAYMENT, b"k", b"\x00\x00\x00\x00\x01\x00", 0)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.UNKNOWN_SCHEMA


def test_a_registry_that_does_not_answer_is_an_error_not_a_rejection() -> None:
    """An outage says nothing about the record: the worker retries it, never dead-letters it."""
    from streams.contract.exceptions import SchemaRegistryUnavailableError
    from tests.registry_stub import RegistryStub

    stub = RegistryStub()
    try:
        stub.schemas[7] = (SCHEMAS / "PaymentEvent" / "v1.avsc").read_text()
        parsed = default_registry().current("PaymentEvent").parsed
        import io

        import fastavro

        body = io.BytesIO()
        fastavro.schemaless_writer(body, parsed, PAYMENT)
        data = b"\x00" + (7).to_bytes(4, "big") + body.getvalue()
        decoder = InputDecoder(schema_registry_client=sr.SchemaRegistryClient({"url": stub.url}))

        stub.available = False
        with pytest.raises(SchemaRegistryUnavailableError, match="schema id 7"):
            decoder.decode(Side.PAYMENT, b"REF-1", data, 0)
        # Not remembered as bad: once the registry is back, the same record decodes.
        stub.available = True
        result = decoder.decode(Side.PAYMENT, b"REF-1", data, 0)
        assert isinstance(result, InputEvent), result
        assert result.amount_minor == PAYMENT["amount_minor"]
        # An id the registry does not know is a property of the record: dead-lettered.
        unknown = b"\x00" + (8).to_bytes(4, "big") + body.getvalue()
        rejected = decoder.decode(Side.PAYMENT, b"REF-1", unknown, 1)
        assert isinstance(rejected, Rejection)
        assert rejected.reason is RejectReason.UNKNOWN_SCHEMA
    finally:
        stub.close()


def test_an_unreachable_registry_is_an_error_not_a_rejection() -> None:
    from streams.contract.exceptions import SchemaRegistryUnavailableError

    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    client = sr.SchemaRegistryClient({"url": "http://127.0.0.1:9", "max.retries": 0})
    with pytest.raises(SchemaRegistryUnavailableError):
        InputDecoder(schema_registry_client=client).decode(
            Side.PAYMENT, b"k", b"\x00\x00\x00\x00\x05\x00", 0
        )

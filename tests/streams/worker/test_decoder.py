"""The worker's input decoder, shared with recon verify and the scaling bridge: with
SCHEMA_REGISTRY_URL set it reads the Confluent format; without, such a record is unknown."""

from __future__ import annotations

from dataclasses import replace

from streams.contract.decode import Rejection, RejectReason
from streams.contract.model import InputEvent, Side
from streams.worker.decoder import input_decoder
from streams.worker.settings import WorkerSettings
from tests.fuzz.corpus import REGISTRY_SCHEMAS, avro_body, confluent_frame
from tests.registry_stub import RegistryStub

RECORD = {
    "event_id": "e-1",
    "reference": "R-1",
    "amount_minor": 5,
    "currency": "EUR",
    "event_time": 1_767_225_600_000,
    "kind": "payment",
}


def test_with_and_without_a_registry() -> None:
    value = confluent_frame(1, avro_body(Side.PAYMENT, RECORD))
    stub = RegistryStub()
    stub.schemas.update(REGISTRY_SCHEMAS)
    try:
        settings = replace(WorkerSettings(), schema_registry_url=stub.url)
        assert isinstance(
            input_decoder(settings).decode(Side.PAYMENT, b"R-1", value, 0), InputEvent
        )
    finally:
        stub.close()
    without = input_decoder(WorkerSettings()).decode(Side.PAYMENT, b"R-1", value, 0)
    assert isinstance(without, Rejection)
    assert without.reason is RejectReason.UNKNOWN_SCHEMA

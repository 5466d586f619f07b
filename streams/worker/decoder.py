"""The decoder of the worker's inputs, for the worker and for every command that reads the
inputs as the worker does (``recon verify``, the scaling bridge): with the Confluent schema
registry of ``SCHEMA_REGISTRY_URL`` when it is set. A command that decoded without it would
take every valid Confluent-format record for an UNKNOWN_SCHEMA rejection."""

from __future__ import annotations

from streams.contract.decode import InputDecoder
from streams.worker.settings import WorkerSettings


def input_decoder(settings: WorkerSettings) -> InputDecoder:
    if not settings.schema_registry_url:
        return InputDecoder()
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf = {"url": settings.schema_registry_url}
    if settings.schema_registry_basic_auth:
        conf["basic.auth.user.info"] = settings.schema_registry_basic_auth
    return InputDecoder(schema_registry_client=SchemaRegistryClient(conf))

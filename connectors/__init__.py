"""Sink connectors: move the reconciler's output topics into external stores.

:mod:`connectors.base` is the small backend interface, :mod:`connectors.loop` the Kafka
consuming loop that drives any backend, :mod:`connectors.postgres` the PostgreSQL backend.
"""

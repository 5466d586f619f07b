"""Kafka's Java-compatible murmur2 key partitioning, the one Faust (aiokafka) uses.

Upstream producers must use the same (confluent-kafka: ``partitioner=murmur2_random``), or a
reference's payments and ledger entries land on different partitions and never meet.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions

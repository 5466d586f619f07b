"""Errors of the contract layer, all derived from :class:`streams.exceptions.ReconError`.

Input decoding never raises these for bad input: it returns a
:class:`streams.contract.decode.Rejection`. They are raised for programming or deployment errors
(a bad ``.avsc``, an output record that cannot be encoded, bytes on an output topic that are not
ours), and for a schema registry that cannot answer, which says nothing about the record.
"""

from __future__ import annotations

from streams.exceptions import ReconError


class ContractError(ReconError):
    """Base class of the contract layer's errors."""


class SchemaError(ContractError):
    """A schema file is missing, malformed, or breaks the evolution rules (at load time)."""


class EncodeError(ContractError):
    """An output record could not be encoded with its schema."""


class DecodeError(ContractError):
    """Bytes on an output topic are not a record of the expected schema."""


class SchemaRegistryUnavailableError(ContractError):
    """The schema registry did not answer a lookup (down, 5xx, timeout). The record may be fine:
    it must be retried, not dead-lettered."""

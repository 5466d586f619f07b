"""Errors of the matching engine."""

from streams.exceptions import ConfigError, ReconError


class EngineError(ReconError):
    """Base of every matching-engine error."""


class EngineConfigError(EngineError, ConfigError):
    """A :class:`MatchConfig` value is invalid."""


class InvalidInputError(EngineError):
    """An input record breaks an invariant the engine relies on (e.g. a non-positive amount)."""


class CorruptStateError(EngineError):
    """A stored record cannot be decoded or contradicts the key layout."""


class PartitionMismatchError(EngineError):
    """A store that holds one partition's state was used for another partition."""

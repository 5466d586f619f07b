"""Errors of the sink connectors, all derived from :class:`streams.exceptions.ReconError`."""

from __future__ import annotations

from streams.exceptions import ConfigError, ReconError


class SinkError(ReconError):
    """Base class of the connectors' errors."""


class SinkConfigError(SinkError, ConfigError):
    """A sink setting is missing or invalid."""


class SinkUnavailableError(SinkError):
    """The target store cannot be reached or refused the transaction for a transient reason.

    The batch is intact and must be retried as a whole; nothing was committed.
    """


class RecordRejectedError(SinkError):
    """The store rejected the batch because of its data (e.g. a value out of a column's range).

    Retrying the same rows cannot succeed; the backend isolates the offending record.
    """


class MigrationError(SinkError):
    """A schema migration is missing, altered after it was applied, or failed."""

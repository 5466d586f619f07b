"""Errors of the state stores."""

from streams.exceptions import ReconError


class StateError(ReconError):
    """A state store failed or was used wrongly."""


class StoreClosedError(StateError):
    """The store was used after :meth:`close`."""


class StagedWriteError(StateError):
    """A staged store was read after it staged writes: the reader would miss them."""


class RestoreError(StateError):
    """The local state cannot be brought in line with the changelog."""

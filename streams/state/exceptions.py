"""Errors of the state stores."""

from streams.exceptions import ReconError


class StateError(ReconError):
    """A state store failed or was used wrongly."""


class StoreClosedError(StateError):
    """The store was used after :meth:`close`."""


class TransactionStateError(StateError):
    """A partition transaction was asked for a step its status does not allow (a read or a
    write after prepare, a commit before it, anything after a commit or a failure)."""


class RestoreError(StateError):
    """The local state cannot be brought in line with the changelog."""

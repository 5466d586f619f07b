"""Errors of the state stores."""

from streams.exceptions import ReconError


class StateError(ReconError):
    """A state store failed or was used wrongly."""


class StoreClosedError(StateError):
    """The store was used after :meth:`close`."""

"""Errors of the operator tools."""

from streams.exceptions import ReconError


class OpsError(ReconError):
    """An operator command cannot do what it was asked."""

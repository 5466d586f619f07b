"""Errors of the worker adapter."""

from streams.exceptions import ReconError


class WorkerError(ReconError):
    """The worker cannot run as configured."""


class TopologyError(WorkerError):
    """Topics are missing or not co-partitioned."""

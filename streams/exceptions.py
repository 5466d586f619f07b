"""The root of the project's one exception tree.

Every subpackage defines its own errors in its own ``exceptions.py``, all derived from
:class:`ReconError`, so callers can catch "anything of ours" in one place.
"""


class ReconError(Exception):
    """Base class of every error raised by this project."""


class ConfigError(ReconError):
    """A setting is missing or has an invalid value."""


class UnreachableError(ReconError):
    """A dependency (the Kafka cluster, PostgreSQL) did not answer within its bound at start-up.

    Its message is one line naming what, where (never with credentials) and why.
    """

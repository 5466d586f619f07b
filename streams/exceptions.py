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


class RefusedError(ReconError):
    """A dependency refused this process's credentials, or this process refused the
    dependency's certificate: a setting is wrong, and no retry can help.

    Its message is one line naming what, where and why, never a password.
    """


# Exit statuses of every ``recon`` process (sysexits.h), for an orchestrator to tell a wrong
# setting (do not restart in a loop) from a dependency that is down (retry later).
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a dependency did not answer
EXIT_CONFIG = (
    78  # EX_CONFIG: a dependency refused the credentials, or its certificate is not trusted
)

"""Exponential backoff, optionally with jitter: how long to wait before the next attempt.

One helper for every retry loop (the sink's start-up and write retries, the worker's batch
retries), so that they all grow, cap and spread the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_s(
    attempt: int,
    first_ms: float,
    cap_ms: float,
    *,
    jitter: bool = True,
    draw: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1: the first retry).

    The wait is ``first_ms`` doubled per attempt, at most ``cap_ms``. With ``jitter`` it is a
    uniform draw (``draw``) between half of that and all of it: processes retrying at once
    spread out, and none retries in a tight loop."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    cap = min(cap_ms, first_ms * 2 ** min(attempt - 1, 60))
    return (draw(cap / 2, cap) if jitter else cap) / 1000

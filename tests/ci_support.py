"""What a test does when something it needs is missing: under CI (CI=true) that is a failure,
on a developer's machine a skip with the command that provides it. Also the tools built by
the set-up scripts in .ci/ (helm, promtool), by the path those scripts print."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(message: str, hint: str) -> NoReturn:
    """Fail under CI, else skip naming ``hint`` (the make target that provides it)."""
    if in_ci():
        pytest.fail(f"{message}: under CI a missing dependency is a failure", pytrace=False)
    pytest.skip(f"{message}; {hint}")


def ci_tool(script: str, timeout: float = 900) -> str:
    """The path ``.ci/<script>`` prints on its last line; it builds the tool when the cache
    lacks it (minutes, once per cache)."""
    try:
        done = subprocess.run(
            [str(ROOT / ".ci" / script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        done = subprocess.CompletedProcess([], 1, "", str(exc))
    path = done.stdout.strip().rpartition("\n")[2]
    if done.returncode != 0 or not path or not os.access(path, os.X_OK):
        name = script.removesuffix(".sh")
        missing(
            f"{name} is not available from .ci/{script}: {done.stderr.strip()[-2000:]}",
            f"build it with `make {name}`",
        )
    return path

"""`make test` runs each fault scenario in its short form (`make faults --full` runs the long
one): under its fault, nothing sent is lost or doubled, no worker exits, `recon verify`
passes, and the system recovers within a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import KafkaSettings
from tests.ci_support import missing
from tests.faults.scenarios import SCENARIOS, Env

# What the short runs must come back within: the session timeout (10 s here), a start, a
# restore and the next commit, with room for a loaded CI machine.
RECOVERY_BOUND_S = 60


# The fuzz scenario's short form is tests/fuzz/test_pipeline.py, with finer assertions.
@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "fuzz"])
def test_short_fault_scenario_loses_and_doubles_nothing(
    name: str, kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    env = Env(kafka, database_url, tmp_path, full=False)
    figures = SCENARIOS[name](env)
    if "skipped" in figures.notes:
        missing(f"{name}: {figures.notes['skipped']}", "run it on the local broker and database")
    report = figures.summary()
    assert figures.trials >= 1, report
    assert figures.sent > 0, report
    assert figures.problems == [], report
    assert (figures.lost, figures.doubled) == (0, 0), report
    assert figures.worker_exits == 0, report
    assert figures.verify_failures == 0, report
    slowest = max(figures.recovery_s + figures.recovery_empty_s, default=0.0)
    assert slowest < RECOVERY_BOUND_S, report
    # A broker outage is said once per kind of line, then at most once per 30 s with a
    # count: dozens of lines, not the thousands one repeated error per retry would be.
    assert max(figures.notes.get("worker_error_lines", [0])) < 100, report

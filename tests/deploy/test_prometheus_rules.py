"""The Prometheus rules (helm/recon/files/prometheus/recon-rules.yml): promtool's checks and unit
tests, and what promtool cannot know: every alert documents itself and links an existing section
of docs/operations.md, and every expression names only the metrics and labels that
docs/observability.md documents.

promtool comes from the Go module proxy through .ci/promtool.sh (cached outside git, like the
Kafka jars). Without it the promtool tests skip locally and fail under CI, like the other tests
that need a tool `make test` installs.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from tests.ci_support import ci_tool

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "helm" / "recon" / "files" / "prometheus"
RULES = RULES_DIR / "recon-rules.yml"
RULE_TESTS = RULES_DIR / "recon-rules.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
OBSERVABILITY = ROOT / "docs" / "observability.md"
RUNBOOK = "https://github.com/recon/recon/blob/main/docs/operations.md"
JOBS = {"recon-worker", "recon-sink"}
# Added by Prometheus to every scraped series, so in no metric table.
TARGET_LABELS = {"job", "instance"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# What follows a function's or an aggregation's name (`sum by (job) (...)`), never a metric's.
AFTER_A_CALL = {"(", "by", "without"}
TOKEN = re.compile(
    r"""
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<matchers>\{(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^}"'])*\})
    | (?P<range>\[[^\]]*\])
    | (?P<number>\d[\w.]*)
    | (?P<name>[A-Za-z_:][\w:]*)
    | (?P<other>\S)
    """,
    re.VERBOSE,
)
MATCHER = re.compile(
    r"""\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
)


# --- promtool -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    """The path .ci/promtool.sh prints; it builds promtool first when the cache lacks it."""
    return ci_tool("promtool.sh")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=300, check=False, cwd=RULES_DIR
    )


def test_promtool_check_rules_passes(promtool: str) -> None:
    done = _run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    done = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout


# --- the rules, read in Python ----------------------------------------------------------------


@cache
def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def _rules() -> list[dict[str, Any]]:
    groups = _load(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _recorded() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def test_the_file_is_a_plain_rules_file_with_alerts_and_the_business_figure() -> None:
    data = _load(RULES)
    assert set(data) == {"groups"}, "a plain Prometheus rules file: groups and nothing else"
    names = [group["name"] for group in data["groups"]]
    assert len(names) == len(set(names)), names
    alerts = [rule["alert"] for rule in _alerts()]
    assert len(alerts) == len(set(alerts)), alerts
    assert len(alerts) >= 10
    assert "recon:match_share:ratio_1h" in _recorded()


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_link() -> None:
    anchors = _anchors(OPERATIONS.read_text(encoding="utf-8"))
    for alert in _alerts():
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in {"warning", "critical"}, name
        annotations = alert.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{name}: no {key}"
        url = annotations["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == RUNBOOK, f"{name}: {url} is not a link into docs/operations.md"
        assert anchor in anchors, f"{name}: docs/operations.md has no heading #{anchor}"


def test_every_alert_fires_in_the_unit_tests_and_some_cases_stay_quiet() -> None:
    fired: set[str] = set()
    quiet = 0
    tested_exprs: set[str] = set()
    tests = _load(RULE_TESTS)
    assert tests["rule_files"] == [RULES.name], "rule_files relative to the test file"
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                fired.add(check["alertname"])
                for alert in check["exp_alerts"]:
                    assert set(alert["exp_annotations"]) >= {"summary", "description"}
            else:
                quiet += 1
        tested_exprs |= {check["expr"] for check in case.get("promql_expr_test", [])}
    assert {alert["alert"] for alert in _alerts()} <= fired
    assert quiet >= 5
    assert "recon:match_share:ratio_1h" in tested_exprs


# --- metric names and labels against docs/observability.md -----------------------------------


def _documented() -> tuple[set[str], set[str]]:
    """The metric names (histograms with their series suffixes) and label names of the tables."""
    metrics: set[str] = set()
    labels: set[str] = set()
    header: list[str] | None = None
    for line in OBSERVABILITY.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if header[:3] != ["metric", "type", "labels"] or set(cells[0]) <= {"-", ":"}:
            continue
        names = re.findall(r"`([A-Za-z_:][\w:]*)`", cells[0])
        assert names, f"a metric row without a metric name: {line}"
        for name in names:
            metrics.add(name)
            if cells[1] == "histogram":
                metrics.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
        without_values = re.sub(r"\([^)]*\)", "", cells[2])
        labels.update(word for word in re.findall(r"[a-z_]+", without_values))
    return metrics, labels


def _exprs() -> Iterator[tuple[str, str]]:
    for rule in _rules():
        yield rule.get("alert") or rule["record"], rule["expr"]


def _parse(expr: str) -> tuple[set[str], set[str], list[tuple[str, str, str]]]:
    """The metric names, the label names (matchers and grouping) and the matchers of a PromQL
    expression."""
    tokens = [(m.lastgroup or "", m.group()) for m in TOKEN.finditer(expr)]
    metrics: set[str] = set()
    labels: set[str] = set()
    matchers: list[tuple[str, str, str]] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "matchers":
            for label, op, quoted in MATCHER.findall(text[1:-1]):
                labels.add(label)
                matchers.append((label, op, quoted[1:-1]))
        elif kind == "name" and text in GROUPING:
            if following == "(":
                end = next(j for j in range(i + 1, len(tokens)) if tokens[j][1] == ")")
                labels.update(t for k, t in tokens[i + 2 : end] if k == "name")
                i = end
        elif kind == "name" and text not in PROMQL_KEYWORDS and following not in AFTER_A_CALL:
            metrics.add(text)
        i += 1
    return metrics, labels, matchers


def test_the_expression_parser_sees_metrics_labels_and_matchers() -> None:
    metrics, labels, matchers = _parse(
        'sum by (job, topic) (rate(a_total{job="recon-worker",x=~"1|2"}[5m] offset 1d))'
        " / on (job) group_left () b > 26 * 3600 and absent(up{job='recon-sink'})"
        " or max(c) without (partition) unless time() - d_seconds > 1e3"
    )
    assert metrics == {"a_total", "b", "up", "c", "d_seconds"}
    assert labels == {"job", "topic", "x", "partition"}
    assert ("x", "=~", "1|2") in matchers
    assert ("job", "=", "recon-sink") in matchers


def test_every_expression_names_only_documented_metrics_and_labels() -> None:
    metrics, labels = _documented()
    assert {"recon_consumer_lag_records", "recon_sink_retries_total", "recon_ready"} <= metrics
    assert {"topic", "partition", "kind", "status", "reason", "check", "outcome"} <= labels
    known = metrics | _recorded() | {"up"}
    for name, expr in _exprs():
        used, used_labels, matchers = _parse(expr)
        assert used, f"{name}: no metric in {expr}"
        assert used <= known, f"{name}: undocumented metrics {sorted(used - known)}"
        unknown = used_labels - labels - TARGET_LABELS
        assert not unknown, f"{name}: undocumented labels {sorted(unknown)}"
        for label, _, value in matchers:
            if label == "job":
                assert set(value.split("|")) <= JOBS, f"{name}: job {value!r}"


def test_annotations_name_only_labels_the_alert_can_carry() -> None:
    _, labels = _documented()
    for alert in _alerts():
        for text in alert["annotations"].values():
            used = set(re.findall(r"\$labels\.(\w+)", str(text)))
            assert used <= labels | TARGET_LABELS, f"{alert['alert']}: {sorted(used)}"


# --- GitHub's heading anchors -----------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text lowercased, punctuation dropped (hyphens
    and underscores stay), spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or heading is None:
            continue
        slug = _slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_the_slugs_follow_github() -> None:
    assert _slug("The daily check: `recon verify`") == "the-daily-check-recon-verify"
    assert _slug("Lost disk: a worker's RocksDB") == "lost-disk-a-workers-rocksdb"
    assert _slug("ReconSinkDown") == "reconsinkdown"
    assert _anchors("# A\n```\n# B\n```\n## A\n") == {"a", "a-1"}

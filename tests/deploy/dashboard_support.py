"""The Grafana dashboard's queries and the metrics documented in docs/observability.md.

Pure helpers (no Grafana, no Prometheus): ``dashboard_metric_names`` names every metric the
dashboard's panel queries select, so a test can compare them with the documented tables
(tests/deploy/test_compose.py) or with a live scrape of the worker and the sink.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "helm" / "recon" / "files" / "grafana" / "recon-dashboard.json"
OBSERVABILITY_DOC = ROOT / "docs" / "observability.md"

# Metrics Prometheus itself adds to every scrape, not exported by the processes.
SCRAPE_METRICS = frozenset({"up"})

# PromQL words that are not metric names where they stand without a "(" after them.
_KEYWORDS = frozenset(
    {
        # aggregation operators and their modifiers
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "by",
        "without",
        # binary operators and vector matching
        "and",
        "or",
        "unless",
        "atan2",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        # modifiers and literals
        "offset",
        "start",
        "end",
        "inf",
        "nan",
    }
)
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_LABEL_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_MODIFIER = re.compile(r"\boffset\s+-?[\dsmhdwy]+|@\s*-?[\d.]+", re.IGNORECASE)
_TOKEN = re.compile(
    r"(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)"
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
)
_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels a collapsed row holds."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from iter_panels(panel)


def panel_exprs(dashboard: Mapping[str, Any]) -> list[str]:
    """The PromQL of every panel target, in dashboard order."""
    return [
        target["expr"]
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def expr_metric_names(expr: str) -> set[str]:
    """The metric names one PromQL expression selects; a histogram's ``_bucket``, ``_sum`` and
    ``_count`` series count as the histogram."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _LABEL_MATCHERS.sub(" ", text)
    while _RANGE.search(text):  # subqueries nest: [5m:1m] inside [..]
        text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _MODIFIER.sub(" ", text)
    names: set[str] = set()
    for match in _TOKEN.finditer(text):
        name = match.group("name")
        if name is None:
            continue
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation: rate(, histogram_quantile(, sum (
        if name.lower() in _KEYWORDS:
            continue
        names.add(_histogram_name(name))
    return names


def _histogram_name(name: str) -> str:
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def dashboard_metric_names(dashboard: Mapping[str, Any]) -> set[str]:
    """Every metric name used in the ``expr`` of every panel target of the dashboard."""
    names: set[str] = set()
    for expr in panel_exprs(dashboard):
        names |= expr_metric_names(expr)
    return names


def documented_metric_names(path: Path = OBSERVABILITY_DOC) -> set[str]:
    """The metric names in the first column of the metric tables of docs/observability.md
    (tables whose first header cell is ``metric``; a cell may list several names)."""
    names: set[str] = set()
    in_table = False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            in_table = False
            continue
        first = stripped.strip("|").split("|")[0].strip()
        if first == "metric":
            in_table = True
            continue
        if not in_table or set(first) <= set("-: "):
            continue
        for name in re.findall(r"`([^`]+)`", first):
            if _METRIC_NAME.match(name):
                names.add(name)
    return names

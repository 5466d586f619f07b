"""The suite's figures against issue 10's targets: a markdown table, and what the machine was."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Results = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    unit: str
    target: str  # as the issue states it; "" for context figures
    # Whether the value meets the target; None when there is no target, or when the figure
    # was measured at another size than the target names (quick mode).
    met: Callable[[Results], bool | None]


def _at_least(key: str, floor: float) -> Callable[[Results], bool]:
    return lambda r: float(r[key]) >= floor


def _at_most(key: str, ceiling: float) -> Callable[[Results], bool]:
    return lambda r: float(r[key]) <= ceiling


def _none(_: Results) -> None:
    return None


def _rss_10m(r: Results) -> bool | None:
    if int(r["rss_10m_open_groups"]) != 10_000_000:
        return None
    return float(r["rss_mb_10m_open"]) <= 600


def _expiry_flat(r: Results) -> bool | None:
    """Proportional to the expired, not the open: the cost per expired group may not grow
    with the open groups (up to 2x for noise) across the sizes measured."""
    per = [float(e["us_per_expired"]) for e in r.get("expire_scaling", ())]
    return max(per) <= 2 * min(per) if len(per) > 1 else None


FIGURES: tuple[Figure, ...] = (
    Figure("limit_passthrough_rps", "limit: raw pass-through", "records/s", "", _none),
    Figure("worker_rps", "worker", "records/s", ">= 25,000", _at_least("worker_rps", 25_000)),
    Figure("worker_over_limit", "worker / limit", "", "", _none),
    Figure(
        "inprocess_rps",
        "in-process (rocksdict)",
        "records/s",
        ">= 60,000",
        _at_least("inprocess_rps", 60_000),
    ),
    Figure("peer_rps", "quix-streams peer (exact 1:1 only)", "records/s", "", _none),
    Figure("worker_over_peer", "worker / peer", "", ">= 1", _at_least("worker_over_peer", 1)),
    Figure("sink_rps", "sink", "rows/s", ">= 100,000", _at_least("sink_rps", 100_000)),
    Figure("sink_over_copy", "sink / raw COPY", "", ">= 0.8", _at_least("sink_over_copy", 0.8)),
    Figure("latency_ms_p50", "latency p50 beyond allowed_lateness", "ms", "", _none),
    Figure(
        "latency_ms_p99",
        "latency p99 beyond allowed_lateness",
        "ms",
        "<= 500",
        _at_most("latency_ms_p99", 500),
    ),
    Figure("rss_mb_1m_open", "worker RSS, {rss_1m_open_groups:,} open groups", "MB", "", _none),
    Figure(
        "rss_mb_10m_open",
        "worker RSS, {rss_10m_open_groups:,} open groups",
        "MB",
        "<= 600 at 10M",
        _rss_10m,
    ),
    Figure(
        "expire_1pct_of_1m_s",
        "expire 1% of {expire_1pct_of_1m_groups:,} open groups",
        "s",
        "∝ expired, not open",
        _expiry_flat,
    ),
    Figure(
        "restore_rps",
        "restore from changelog",
        "records/s",
        ">= 100,000",
        _at_least("restore_rps", 100_000),
    ),
)


def _value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return str(value)
    if unit == "" or abs(value) < 10:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def markdown(results: Results) -> str:
    lines = ["| figure | value | target | met? |", "|---|---|---|---|"]
    for f in FIGURES:
        if f.key not in results:
            continue
        met = f.met(results)
        mark = (
            "" if met is None and not f.target else "n/a" if met is None else "yes" if met else "no"
        )
        unit = f" {f.unit}" if f.unit else ""
        label = f.label.format(**results)
        lines.append(
            f"| {label} | {_value(float(results[f.key]), f.unit)}{unit} | {f.target} | {mark} |"
        )
    scaling = results.get("expire_scaling")
    if scaling:
        per = ", ".join(
            f"{e['us_per_expired']:,.0f} us at {e['open_groups']:,} open" for e in scaling
        )
        lines.append(f"\nexpiry cost per expired group: {per}")
    return "\n".join(lines)


def machine(quick: bool) -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "quick": quick,
        "commit": _commit(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None

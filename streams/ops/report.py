"""``recon report``: the state of reconciliation, from PostgreSQL alone.

In the terminal: the match rate, matches by rule, exceptions by kind and status, the ageing of
open exceptions, the oldest open items and dead letters by reason. ``--html FILE`` writes the
same figures and three charts (match rate per day, open exception ageing, volume per hour) as
one page with the charts inline (SVG), so it opens from a file with no server and no network.

The match rate counts items: a match, or an exception still open. A resolved exception is
counted by its ``late`` match, so nothing is counted twice.
"""

from __future__ import annotations

import argparse
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

AGEING_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("< 1 h", timedelta(hours=1)),
    ("< 1 d", timedelta(days=1)),
    ("< 7 d", timedelta(days=7)),
    ("older", None),
)


@dataclass(frozen=True, slots=True)
class OpenItem:
    exception_id: str
    reference: str
    kind: str
    raised_at: datetime
    age: timedelta


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    matches: int
    open_exceptions: int
    exceptions: int  # raised in the period, open or resolved

    @property
    def match_rate(self) -> float | None:
        items = self.matches + self.open_exceptions
        return self.matches / items if items else None


@dataclass(frozen=True, slots=True)
class Report:
    as_of: datetime
    matches_by_rule: dict[str, int]
    exceptions_by_kind_status: dict[tuple[str, str], int]
    ageing: dict[str, int]  # open exceptions by the age of their raising, at ``as_of``
    oldest_open: list[OpenItem]
    dead_letters_by_reason: dict[str, int]
    daily: list[Period] = field(default_factory=list)
    hourly: list[Period] = field(default_factory=list)

    @property
    def matches(self) -> int:
        return sum(self.matches_by_rule.values())

    @property
    def open_exceptions(self) -> int:
        return sum(
            n for (_, status), n in self.exceptions_by_kind_status.items() if status == "open"
        )

    @property
    def match_rate(self) -> float | None:
        items = self.matches + self.open_exceptions
        return self.matches / items if items else None


def build_report(
    conn: psycopg.Connection[Any], as_of: datetime | None = None, oldest: int = 10
) -> Report:
    """Read the figures from the sink's tables (``conn``'s search_path names the schema)."""
    as_of = as_of if as_of is not None else datetime.now(UTC)
    rules = dict(conn.execute("SELECT rule, count(*) FROM recon_matches GROUP BY rule").fetchall())
    kinds = {
        (str(kind), str(status)): int(n)
        for kind, status, n in conn.execute(
            "SELECT kind, status, count(*) FROM recon_exceptions GROUP BY kind, status"
        ).fetchall()
    }
    ages = [row[0] for row in conn.execute(
        "SELECT %s - raised_at FROM recon_exceptions WHERE status = 'open'", [as_of]
    ).fetchall()]  # fmt: skip
    ageing = dict.fromkeys((name for name, _ in AGEING_BUCKETS), 0)
    for age in ages:
        ageing[_bucket(age)] += 1
    oldest_rows = conn.execute(
        "SELECT exception_id, reference, kind, raised_at FROM recon_exceptions"
        " WHERE status = 'open' ORDER BY raised_at, exception_id LIMIT %s",
        [oldest],
    ).fetchall()
    dead = dict(
        conn.execute("SELECT reason, count(*) FROM recon_dead_letters GROUP BY reason").fetchall()
    )
    return Report(
        as_of=as_of,
        matches_by_rule={str(k): int(v) for k, v in sorted(rules.items())},
        exceptions_by_kind_status=dict(sorted(kinds.items())),
        ageing=ageing,
        oldest_open=[OpenItem(str(i), str(r), str(k), t, as_of - t) for i, r, k, t in oldest_rows],
        dead_letters_by_reason={str(k): int(v) for k, v in sorted(dead.items())},
        daily=_periods(conn, "day"),
        hourly=_periods(conn, "hour"),
    )


def _bucket(age: timedelta) -> str:
    for name, limit in AGEING_BUCKETS:
        if limit is None or age < limit:
            return name
    raise AssertionError("the last bucket has no limit")


def _periods(conn: psycopg.Connection[Any], unit: str) -> list[Period]:
    """Matches by their first event, exceptions by their raising, per ``unit`` (UTC)."""
    rows = conn.execute(
        """
        WITH m AS (
            SELECT date_trunc(%(unit)s, first_event_time AT TIME ZONE 'UTC') AS t, count(*) AS n
            FROM recon_matches GROUP BY 1
        ), e AS (
            SELECT date_trunc(%(unit)s, raised_at AT TIME ZONE 'UTC') AS t,
                   count(*) FILTER (WHERE status = 'open') AS open, count(*) AS n
            FROM recon_exceptions GROUP BY 1
        )
        SELECT coalesce(m.t, e.t), coalesce(m.n, 0), coalesce(e.open, 0), coalesce(e.n, 0)
        FROM m FULL JOIN e ON m.t = e.t ORDER BY 1
        """,
        {"unit": unit},
    ).fetchall()
    return [Period(t.replace(tzinfo=UTC), int(m), int(o), int(n)) for t, m, o, n in rows]


# -- the terminal -----------------------------------------------------------------------------


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def _age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["", title]
    for n, r in enumerate(cells):
        out.append(
            "  "
            + "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def render_text(r: Report) -> str:
    lines = [
        f"reconciliation report as of {r.as_of:%Y-%m-%d %H:%M:%S} UTC",
        f"match rate {_pct(r.match_rate)}: {r.matches:,} matches, "
        f"{r.open_exceptions:,} open exceptions",
    ]
    lines += _table(
        "matches by rule",
        ("rule", "matches"),
        [(k, f"{v:,}") for k, v in r.matches_by_rule.items()],
    )
    lines += _table(
        "exceptions by kind and status",
        ("kind", "status", "exceptions"),
        [(k, s, f"{n:,}") for (k, s), n in r.exceptions_by_kind_status.items()],
    )
    lines += _table(
        "open exceptions by age", ("age", "open"), [(k, f"{v:,}") for k, v in r.ageing.items()]
    )
    lines += _table(
        f"oldest open exceptions (up to {len(r.oldest_open)})",
        ("exception", "reference", "kind", "raised at", "age"),
        [
            (o.exception_id[:16], o.reference, o.kind, f"{o.raised_at:%Y-%m-%d %H:%M}", _age(o.age))
            for o in r.oldest_open
        ],
    )
    lines += _table(
        "dead letters by reason",
        ("reason", "dead letters"),
        [(k, f"{v:,}") for k, v in r.dead_letters_by_reason.items()],
    )
    return "\n".join(lines)


# -- the page ---------------------------------------------------------------------------------


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    # No creation date in the metadata: the same figures give the same page.
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: no XML prolog or doctype


def charts(r: Report) -> dict[str, str]:
    """The three charts as inline SVG, by title."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    from matplotlib import dates as mdates
    from matplotlib import pyplot as plt

    def _x(times: list[datetime]) -> Any:
        return mdates.date2num(times)  # type: ignore[no-untyped-call]

    out: dict[str, str] = {}
    days = [p for p in r.daily if p.match_rate is not None]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(
        _x([p.start for p in days]),
        [100 * (p.match_rate or 0) for p in days],
        marker="o",
        color="#2a7ab9",
    )
    ax.xaxis_date()
    ax.set_ylabel("match rate, %")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    out["Match rate per day"] = _svg(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(list(r.ageing), list(r.ageing.values()), color="#d9822b")
    ax.set_ylabel("open exceptions")
    out["Open exceptions by age"] = _svg(fig)
    plt.close(fig)

    hours = r.hourly[-24 * 7 :]  # the last week at most: one bar per hour
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(
        _x([p.start for p in hours]),
        [p.matches for p in hours],
        width=1 / 24,
        align="edge",
        label="matches",
        color="#2a7ab9",
    )
    ax.bar(
        _x([p.start for p in hours]),
        [p.exceptions for p in hours],
        width=1 / 24,
        align="edge",
        bottom=[p.matches for p in hours],
        label="exceptions",
        color="#c23030",
    )
    ax.xaxis_date()
    ax.set_ylabel("items per hour")
    ax.legend()
    fig.autofmt_xdate()
    out["Volume per hour"] = _svg(fig)
    plt.close(fig)
    return out


def _html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(r: Report) -> str:
    sections = [
        f"<h1>Reconciliation report</h1><p>As of {r.as_of:%Y-%m-%d %H:%M:%S} UTC. "
        f"Match rate <b>{_pct(r.match_rate)}</b>: {r.matches:,} matches, "
        f"{r.open_exceptions:,} open exceptions.</p>"
    ]
    for title, svg in charts(r).items():
        sections.append(
            f'<figure class="chart"><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'
        )
    sections.append(
        "<h2>Matches by rule</h2>"
        + _html_table(("rule", "matches"), list(r.matches_by_rule.items()))
    )
    sections.append(
        "<h2>Exceptions by kind and status</h2>"
        + _html_table(
            ("kind", "status", "exceptions"),
            [(k, s, n) for (k, s), n in r.exceptions_by_kind_status.items()],
        )
    )
    sections.append(
        "<h2>Oldest open exceptions</h2>"
        + _html_table(
            ("exception", "reference", "kind", "raised at", "age"),
            [
                (o.exception_id, o.reference, o.kind, f"{o.raised_at:%Y-%m-%d %H:%M}", _age(o.age))
                for o in r.oldest_open
            ],
        )
    )
    sections.append(
        "<h2>Dead letters by reason</h2>"
        + _html_table(("reason", "dead letters"), list(r.dead_letters_by_reason.items()))
    )
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1rem}td,th{border:1px solid #ccc;padding:.2rem .6rem}"
        "figure.chart svg{max-width:100%;height:auto}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>recon report {r.as_of:%Y-%m-%d}</title><style>{style}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )


# -- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--html", type=Path, help="also write the report as one self-contained page"
    )
    parser.add_argument(
        "--oldest", type=int, default=10, help="how many of the oldest open items to list"
    )
    parser.add_argument(
        "--as-of",
        type=datetime.fromisoformat,
        help="ISO time the ages are measured at (default now)",
    )


def run(args: argparse.Namespace) -> int:
    from connectors.postgres.settings import sink_settings_from_env

    settings = sink_settings_from_env()
    as_of = args.as_of
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    with psycopg.connect(settings.database_url, options=f"-csearch_path={settings.schema}") as conn:
        report = build_report(conn, as_of, args.oldest)
    print(render_text(report))
    if args.html is not None:
        args.html.write_text(render_html(report), encoding="utf-8")
        print(f"\nwritten to {args.html}")
    return 0

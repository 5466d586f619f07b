"""`make faults`: run the fault scenarios, print their table, write their figures as JSON.

    python -m tests.faults [--full] [--only worker-kill,sink-kill] [--out FILE]

Exits 1 when a scenario lost, doubled or dead-lettered wrongly, saw a worker exit, or failed
``recon verify``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import orjson

from streams.settings import database_url_from_env, kafka_from_env
from tests.faults.scenarios import SCENARIOS, Env

COLUMNS = (
    ("scenario", "scenario", 28),
    ("trials", "trials", 6),
    ("sent", "sent", 8),
    ("lost", "lost", 5),
    ("doubled", "doubled", 7),
    ("dead_lettered", "dead-lettered", 13),
    ("worker_exits", "exits", 5),
    ("recovery_p50_s", "recovery p50 s", 14),
    ("recovery_max_s", "max s", 6),
    ("empty_dir_recovery_p50_s", "empty dir p50 s", 15),
    ("empty_dir_recovery_max_s", "max s", 6),
)


def cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def table(rows: list[dict[str, object]]) -> str:
    lines = ["  ".join(title.rjust(width) for _, title, width in COLUMNS)]
    for row in rows:
        lines.append("  ".join(cell(row.get(key)).rjust(width) for key, _, width in COLUMNS))
    return "\n".join(lines)


def markdown(rows: list[dict[str, object]]) -> str:
    """The table as docs/reliability.md shows it."""
    head = [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key)) for key, _, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make faults", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full run (>= 50 kills each)")
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--out", type=Path, default=Path(".local/faults/results.json"))
    parser.add_argument("--markdown", type=Path, help="also write the table here, in Markdown")
    args = parser.parse_args(argv)
    # The suite's own clients retry through the outages it makes: their lines are noise here.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    work_root = Path(tempfile.mkdtemp(prefix="recon-faults-"))
    env = Env(kafka_from_env(), database_url_from_env(), work_root, full=args.full)
    rows: list[dict[str, object]] = []
    started = time.monotonic()
    for name in names:
        print(f"[faults] {name} ({'full' if args.full else 'short'}) ...", flush=True)
        began = time.monotonic()
        figures = SCENARIOS[name](env)
        figures.seconds = time.monotonic() - began
        rows.append(figures.summary())
        print(table(rows[-1:]).splitlines()[1], flush=True)
        for problem in figures.problems[:10]:
            print(f"    problem: {problem}", flush=True)
    print()
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "full": args.full,
        "seconds": round(time.monotonic() - started),
        "work_dir": str(work_root),
        "scenarios": rows,
    }
    args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if args.markdown:
        args.markdown.write_text(markdown(rows))
    print(f"\nfigures written to {args.out}; logs under {work_root}")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

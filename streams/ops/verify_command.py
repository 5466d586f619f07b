"""``recon verify [--from T --to T]``: run the trial balance and exit non-zero on any imbalance.

Exit codes: 0 balanced, 1 imbalance (each problem is printed, naming the event or row),
3 the check could not be taken (the worker or the sink is behind the cut after ``--wait``).
Each taken check is recorded in ``recon_verify_runs``, which the sink exports as
``recon_verify_problems`` and ``recon_verify_last_run_timestamp_seconds``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from tqdm import tqdm

from connectors.postgres.health import record_verify_run
from connectors.postgres.settings import SinkSettings
from streams.ops.verify import Verdict, Window, render, verify
from streams.ops.verify_sources import (
    NotCaughtUpError,
    input_ends,
    later_ids,
    read_inputs,
    read_rows,
    read_state,
    wait_caught_up,
)
from streams.worker.settings import WorkerSettings


def _ms(text: str | None) -> int | None:
    if text is None:
        return None
    t = datetime.fromisoformat(text)
    return int((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() * 1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", help="check events from this ISO time (UTC)")
    parser.add_argument("--to", dest="end", help="check events before this ISO time (UTC)")
    parser.add_argument(
        "--wait", type=float, default=120, help="seconds to wait for the worker and the sink"
    )
    parser.add_argument("--limit", type=int, default=50, help="problems printed at most")


def trial_balance(
    worker: WorkerSettings,
    sink: SinkSettings,
    window: Window | None = None,
    wait_s: float = 120,
    progress: bool = True,
) -> Verdict:
    """Wait for the worker and the sink to reach the inputs' end offsets now, then balance
    every input before them against the rows and the workers' state. Raises
    NotCaughtUpError when they do not within ``wait_s``."""
    cut = input_ends(worker)
    wait_caught_up(worker, sink, cut, wait_s)
    matches, exceptions, dead = read_rows(sink, [worker.topics.payments, worker.topics.ledger])
    state = read_state(worker, exceptions)
    total = sum(cut.values())
    with tqdm(total=total, desc="inputs", unit="rec", disable=None if progress else True) as bar:

        def advance(n: int) -> None:
            bar.n = n
            bar.refresh()

        inputs = list(read_inputs(worker, {}, cut, advance))
    # Rows and state may already hold events after the cut: read their ids, check nothing.
    later = later_ids(read_inputs(worker, cut, input_ends(worker)))
    return verify(
        inputs,
        matches,
        exceptions,
        dead,
        state,
        partitions=worker.partitions,
        config=worker.match,
        window=window or Window(),
        later_ids=later,
    )


def run(args: argparse.Namespace) -> int:
    import os

    from streams.ops.generations import current

    live = current(os.environ)  # RECON_GENERATION, or the generation readers see
    try:
        verdict = trial_balance(
            live.worker, live.sink, Window(_ms(args.start), _ms(args.end)), args.wait
        )
    except NotCaughtUpError as exc:
        print(f"cannot verify yet: {exc}", file=sys.stderr)
        return 3
    print(render(verdict, args.limit))
    # The sink reads the last run into recon_verify_problems, which an alert watches.
    record_verify_run(
        live.sink.database_url,
        live.sink.readers,
        len(verdict.findings),
        verdict.tally.inputs,
    )
    return 0 if verdict.ok else 1

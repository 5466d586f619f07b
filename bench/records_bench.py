"""In-process speed of the output records' hot paths (no broker, no database).

    .venv/bin/python bench/records_bench.py [--count N] [--repeat R]

Times, per record: the output codec's encoders (the worker's send path), the engine's state codec
of an exception, and the sink's row builder (decode, row, binary COPY stream) over encoded
matches, exceptions and dead letters. Prints the best of R runs in microseconds per record.
``RECON_PURE_PYTHON=1`` measures the Python sources instead of the compiled core.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Sequence

# streams first: under RECON_PURE_PYTHON=1 it makes connectors import from the sources too.
import streams  # noqa: F401
from connectors.base import SinkRecord
from connectors.postgres.rows import RowBuilder
from streams import native
from streams.contract.codec import OutputCodec
from streams.contract.dead_letters import bounded_dead_letter
from streams.contract.model import (
    DeadLetter,
    ExceptionKind,
    ExceptionRecord,
    ExceptionStatus,
    Flow,
    MatchRecord,
    Rule,
)
from streams.engine import codec as state_codec

T0 = 1_767_225_600_000


def matches(n: int) -> list[MatchRecord]:
    return [
        MatchRecord(
            f"m{i:012d}",
            f"REF-{i}",
            Flow.PAYMENT,
            Rule.SPLIT if i % 7 == 0 else Rule.EXACT,
            "EUR",
            1000 + i,
            1000 + i,
            0,
            (f"p{i}",),
            (f"l{i}a", f"l{i}b"),
            T0 + i,
            T0 + i + 5,
            None if i % 3 else f"x{i}",
        )
        for i in range(n)
    ]


def exceptions(n: int) -> list[ExceptionRecord]:
    return [
        ExceptionRecord(
            f"x{i:012d}",
            f"REF-{i}",
            Flow.REFUND,
            ExceptionKind.AMOUNT_MISMATCH,
            ExceptionStatus.RESOLVED if i % 2 else ExceptionStatus.OPEN,
            "EUR",
            None,
            1000 + i,
            990 + i,
            (f"p{i}",),
            (f"l{i}",),
            T0 + i,
            T0 + i + 9 if i % 2 else None,
            f"payments 1000 EUR and ledger 990 EUR differ ({i})",
        )
        for i in range(n)
    ]


def dead_letters(n: int) -> list[DeadLetter]:
    return [
        bounded_dead_letter("payments", i % 3, i, f"REF-{i}".encode(), b"{bad", "BAD_JSON", "x")
        for i in range(n)
    ]


def best(repeat: int, count: int, run: Callable[[], object]) -> float:
    """The best of ``repeat`` runs, in microseconds of this process's CPU per record (CPU time,
    with the collector off: the figure then moves less with the machine's other load)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
        gc.enable()
    return min(times) / count * 1e6


def sink_records(topic: str, values: Sequence[bytes]) -> list[SinkRecord]:
    return [SinkRecord(topic, 0, i, T0 + i, b"k", v) for i, v in enumerate(values)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, r = args.count, args.repeat
    codec = OutputCodec()
    ms, xs, ds = matches(n), exceptions(n), dead_letters(n)
    encoded_m = [codec.encode_match(m) for m in ms]
    encoded_x = [codec.encode_exception(x) for x in xs]
    encoded_d = [codec.encode_dead_letter(d) for d in ds]
    state = [state_codec.encode_exception(x, [b"g1"]) for x in xs]
    builder = RowBuilder()
    batch = 2000
    rows_m, rows_x, rows_d = (
        sink_records(t, v) for t, v in (("m", encoded_m), ("x", encoded_x), ("d", encoded_d))
    )

    def prepare(records: list[SinkRecord]) -> Callable[[], object]:
        return lambda: [builder.prepare(records[i : i + batch]) for i in range(0, n, batch)]

    figures = {
        "encode_match": best(r, n, lambda: [codec.encode_match(m) for m in ms]),
        "encode_exception": best(r, n, lambda: [codec.encode_exception(x) for x in xs]),
        "encode_dead_letter": best(r, n, lambda: [codec.encode_dead_letter(d) for d in ds]),
        "decode_match": best(r, n, lambda: [codec.decode_match(b) for b in encoded_m]),
        "state_encode_exception": best(
            r, n, lambda: [state_codec.encode_exception(x, [b"g1"]) for x in xs]
        ),
        "state_decode_exception": best(
            r, n, lambda: [state_codec.decode_exception(s) for s in state]
        ),
        "rows_matches": best(r, n, prepare(rows_m)),
        "rows_exceptions": best(r, n, prepare(rows_x)),
        "rows_dead_letters": best(r, n, prepare(rows_d)),
    }
    compiled = all(native.compiled().values())
    print(f"{n} records each, best of {r}, {'compiled' if compiled else 'pure Python'}")
    for name, us in figures.items():
        print(f"  {name:24s} {us:6.2f} us/record")


if __name__ == "__main__":
    main()

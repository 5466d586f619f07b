"""The compiled core (streams/native.py) gives byte-identical outputs and state to the pure
Python sources, on simulations with every rule, bad records, any batch size and sweep budget."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams import native

# Run in a fresh interpreter: whether a module is compiled is decided at import.
SCRIPT = """
import hashlib, json, sys
from streams import native
from streams.engine.config import MatchConfig
from streams.engine.engine import MatchingEngine
from streams.settings import TopicNames
from streams.simulate.local import kafka_records
from streams.simulate.scenarios import simulate
from streams.state.memory import MemoryStore
from streams.worker.processor import BatchProcessor

digest = hashlib.sha256()
config = MatchConfig(amount_tolerance_minor=5, amount_tolerance_bps=10)
records = 0
for seed in (3, 7):
    sim = simulate(600, seed=seed, config=config)
    for fmt in ("json", "avro"):
        topics = TopicNames()
        inputs = kafka_records(sim, 3, fmt, topics)
        for batch, budget in ((1, None), (37, 1), (500, 3), (10_000, None)):
            stores = {}
            processor = BatchProcessor(
                MatchingEngine(config), topics, 3,
                lambda p: stores.setdefault(p, MemoryStore()), sweep_chunk=budget,
            )
            for start in range(0, len(inputs), batch):
                result = processor.process(inputs[start : start + batch])
                for out in result.outgoing:
                    digest.update(repr((out.topic, out.key, out.value, out.partition)).encode())
                digest.update(repr(sorted(result.counters.items())).encode())
            for p in sorted(stores):
                for key, value in stores[p].scan(b"", b"\\xff" * 64):
                    digest.update(key + b"=" + value)
            records += len(inputs)
print(json.dumps({"digest": digest.hexdigest(), "records": records,
                  "compiled": sorted(n for n, c in native.compiled().items() if c)}))
"""


def _run(pure: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "RECON_PURE_PYTHON"}
    if pure:
        env["RECON_PURE_PYTHON"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    return result


def test_compiled_and_pure_python_give_identical_bytes() -> None:
    built = native.built()
    if not built and os.environ.get("CI"):
        pytest.fail(
            "the compiled core is not built: make venv runs `python -m streams.native build`"
        )
    if not built:
        pytest.skip("the compiled core is not built here (python -m streams.native build)")
    compiled, pure = _run(pure=False), _run(pure=True)
    assert compiled["compiled"] == sorted(native.module_names())
    assert pure["compiled"] == []
    assert compiled["records"] == pure["records"] > 0
    assert compiled["digest"] == pure["digest"]

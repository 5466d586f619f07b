"""The compiled core: the hot modules built with mypyc, beside their sources.

The engine, its state overlay, the input decoder, the output codec and the batch processor are
strictly typed, so mypyc compiles them to C extensions without changes; the worker then spends
about a third less CPU per record (docs/performance.md). The ``.py`` sources stay the
reference: with ``RECON_PURE_PYTHON=1`` every module is imported from its source (see
``streams/__init__.py``), and a test checks that both give byte-identical outputs.

    python -m streams.native build    # compile in place
    python -m streams.native ensure   # build unless built from the current sources (make)
    python -m streams.native clean    # remove the compiled modules
    python -m streams.native status   # which modules are compiled
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Compiled together (one shared library). Classes here must not be subclassed by interpreted
# code: store base classes (streams/state/base.py) therefore stay interpreted.
MODULES = (
    "streams/engine/engine.py",
    "streams/engine/session.py",
    "streams/engine/clock.py",
    "streams/engine/timers.py",
    "streams/engine/groups.py",
    "streams/engine/closing.py",
    "streams/engine/matching.py",
    "streams/engine/raising.py",
    "streams/engine/dedupe.py",
    "streams/engine/outbox.py",
    "streams/engine/read_views.py",
    "streams/engine/codec.py",
    "streams/engine/keys.py",
    "streams/engine/ids.py",
    "streams/engine/config.py",
    "streams/engine/exception_details.py",
    "streams/engine/progress.py",
    "streams/state/transaction.py",
    "streams/contract/model.py",
    "streams/contract/records.py",
    "streams/contract/decode.py",
    "streams/contract/codec.py",
    "streams/contract/avro_fast.py",
    "streams/contract/dead_letters.py",
    "streams/worker/processor.py",
    "connectors/postgres/rows.py",
    "connectors/postgres/binary_copy.py",
)


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def module_names() -> list[str]:
    return [_module_name(path) for path in MODULES]


def built() -> bool:
    """Whether every module of the core has its compiled extension beside its source."""
    return all(any((ROOT / m).parent.glob(Path(m).stem + ".*.so")) for m in MODULES)


def stale() -> bool:
    """Whether a source changed since its module was compiled."""
    for m in MODULES:
        source = ROOT / m
        for ext in source.parent.glob(source.stem + ".*.so"):
            if source.stat().st_mtime > ext.stat().st_mtime:
                return True
    return False


def compiled() -> dict[str, bool]:
    """Whether each module of the compiled core was loaded from its extension."""
    out = {}
    for path in MODULES:
        module = importlib.import_module(_module_name(path))
        out[module.__name__] = not str(module.__file__).endswith(".py")
    return out


def _artifacts() -> list[Path]:
    found = [p for m in MODULES for p in (ROOT / m).parent.glob(Path(m).stem + ".*.so")]
    return found + list((ROOT / "streams").glob("*__mypyc*.so"))


def build() -> None:
    import os

    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    os.chdir(ROOT)
    setup(
        name="recon-native",
        ext_modules=mypycify(
            list(MODULES),
            opt_level="3",
            target_dir=".local/native-build/c",
            # The shared library goes inside the package (streams/core__mypyc.*.so), so the
            # core imports from any working directory.
            group_name="streams.core",
        ),
        script_args=[
            "build_ext",
            "--inplace",
            "--build-temp",
            ".local/native-build/temp",
            "--build-lib",
            ".local/native-build/lib",
        ],
    )
    # build_ext leaves an extension alone when its generated C did not change (a source was
    # only touched): it is then current, and must not look older than its source.
    for path in _artifacts():
        path.touch()


def clean() -> None:
    for path in _artifacts():
        path.unlink()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        build()
    elif command == "ensure":
        if not built() or stale():
            build()
    elif command == "clean":
        clean()
    elif command == "status":
        for name, native in compiled().items():
            print(f"{name}: {'compiled' if native else 'pure Python'}")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

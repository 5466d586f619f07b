"""The shipped package: the wheel carries the code and the Avro contracts and nothing else, and
``recon`` installed from it decodes a record with no checkout in sight.

The wheel is built from a copy of the sources (no build/ or egg-info left in the checkout) with
this virtualenv's setuptools, offline. It goes into a fresh virtualenv with ``--no-deps``; the
dependencies come from this virtualenv's site-packages through a ``.pth`` line, so the test
needs no index. A ``.pth`` line adds a plain path: the editable install of the checkout that
sits there is not loaded, so ``streams`` can only come from the wheel (the test checks it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from streams.contract.codec import encode_avro

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "schemas", "streams", "connectors")
UNSHIPPED = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "build", "*.egg-info")


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=UNSHIPPED)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-index", "--no-build-isolation", "--wheel-dir", str(out), str(src)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = out.glob("recon-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--disable-pip-version-check", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # The dependencies: this virtualenv's, after the wheel's own files on sys.path.
    Path(site, "recon-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@pytest.mark.slow
def test_the_wheel_installs_and_recon_decodes_a_record_outside_the_checkout(
    tmp_path: Path,
) -> None:
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_code = {
        str(p.relative_to(ROOT))
        for package in ("streams", "connectors")
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert shipped_code <= names, sorted(shipped_code - names)
    contracts = {
        f"streams/contract/schemas/{p.relative_to(ROOT / 'schemas')}"
        for p in (ROOT / "schemas").rglob("*.avsc")
    }
    assert contracts
    assert contracts <= names, sorted(contracts - names)
    assert not [n for n in names if n.startswith(("bench/", "tests/", "schemas/"))]

    venv = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()
    value = encode_avro(
        "PaymentEvent",
        {"event_id": "e-1", "reference": "REF-1", "amount_minor": 1250, "currency": "EUR",
         "event_time": 1_767_225_600_000, "kind": "payment", "source": None, "metadata": None},
    )  # fmt: skip
    (work / "payment.avro").write_bytes(value)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "RECON_SCHEMAS_DIR", "RECON_PURE_PYTHON", "VIRTUAL_ENV"}
    }

    def recon(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "recon"), *args],
            cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = recon("decode", "--topic", "payments", "--key", "REF-1", "payment.avro")
    assert done.returncode == 0, done.stderr
    assert '"record":"InputEvent"' in done.stdout
    assert '"reference":"REF-1"' in done.stdout
    assert '"amount_minor":1250' in done.stdout
    # The same record on the other input: the dead letter the worker would write.
    done = recon("decode", "--topic", "ledger", "--key", "REF-1", "payment.avro")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("dead letter UNKNOWN_SCHEMA:")

    # Everything came from the installed wheel: the code and the schemas it read.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import streams, streams.contract.registry as r; "
         "print(streams.__file__); print(r.default_schemas_dir().resolve())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for path in where:
        assert Path(path).is_relative_to(venv.resolve()), where

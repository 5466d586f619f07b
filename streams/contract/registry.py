"""Loads the versioned Avro schemas in ``schemas/<Name>/v<N>.avsc``.

The registry maps a schema name to its current (highest) version and every known
CRC-64-AVRO fingerprint to ``(name, version, writer schema)``, so data written with any
known version is read with the current one through Avro schema resolution.

Parsed schemas are kept with their ``timestamp-millis`` logical types stripped: the
fingerprint (which is over the Parsing Canonical Form, where logical types do not appear)
is unchanged, and fastavro then reads and writes those fields as exact ``int`` epoch
milliseconds instead of ``datetime``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import orjson
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.contract.exceptions import SchemaError

#: Namespace of every contract record (part of the full names: never change it).
NAMESPACE = "recon.events"
#: Environment variable overriding the schema directory (default: the package's ``schemas``).
SCHEMAS_DIR_ENV = "RECON_SCHEMAS_DIR"

_VERSION_FILE = re.compile(r"v([1-9][0-9]*)\.avsc")
_STRIPPED_LOGICAL_TYPES = frozenset({"timestamp-millis"})


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one contract schema."""

    name: str  # simple name, e.g. "PaymentEvent" (= directory name)
    full_name: str  # e.g. "recon.events.PaymentEvent"
    version: int
    fingerprint: bytes  # 8 bytes, CRC-64-AVRO, little-endian: as in single-object encoding
    parsed: Any  # fastavro parsed schema, timestamp-millis stripped (read/write with this)
    raw: Mapping[str, Any]  # the .avsc as written (with logical types)

    @property
    def header(self) -> bytes:
        """The 10-byte single-object encoding header: C3 01 + fingerprint."""
        return b"\xc3\x01" + self.fingerprint


def default_schemas_dir() -> Path:
    env = os.environ.get(SCHEMAS_DIR_ENV)
    if env:
        return Path(env)
    # Package data of this package: the wheel carries the .avsc files here; in a checkout
    # streams/contract/schemas is a link to the top-level schemas/, their one copy.
    return Path(__file__).parent / "schemas"


def strip_logical_types(schema: Any) -> Any:
    """Return a copy of a JSON schema without ``timestamp-millis`` annotations."""
    if isinstance(schema, dict):
        out = {k: strip_logical_types(v) for k, v in schema.items()}
        if out.get("logicalType") in _STRIPPED_LOGICAL_TYPES:
            del out["logicalType"]
            if len(out) == 1:
                return out["type"]
        return out
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


def parse_schema_json(raw: Any) -> tuple[Any, bytes, str]:
    """Parse a JSON schema: ``(parsed stripped schema, fingerprint, full name or "")``."""
    try:
        parsed = fastavro.parse_schema(strip_logical_types(raw))
        canonical = to_parsing_canonical_form(parsed)
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    except Exception as exc:  # fastavro raises many types for bad schemas
        raise SchemaError(f"invalid Avro schema: {exc}") from exc
    name = parsed.get("name", "") if isinstance(parsed, dict) else ""
    return parsed, fp, str(name)


def _field_map(raw: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(f["name"]): f for f in raw.get("fields", ())}


class SchemaRegistry:
    """All versions of all contract schemas found under one directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_schemas_dir()
        self._versions: dict[str, tuple[SchemaVersion, ...]] = {}
        self._by_fp: dict[bytes, SchemaVersion] = {}
        if not self.root.is_dir():
            raise SchemaError(f"schema directory not found: {self.root}")
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir():
                self._load_name(sub)
        if not self._versions:
            raise SchemaError(f"no schemas found under {self.root}")

    def _load_name(self, sub: Path) -> None:
        name = sub.name
        found: list[SchemaVersion] = []
        for path in sorted(sub.iterdir()):
            m = _VERSION_FILE.fullmatch(path.name)
            if m is None:
                if path.suffix == ".avsc":
                    raise SchemaError(f"{path}: schema files must be named v<N>.avsc")
                continue
            found.append(self._load_file(name, int(m.group(1)), path))
        if not found:
            return
        found.sort(key=lambda v: v.version)
        full_names = {v.full_name for v in found}
        if len(full_names) != 1:
            raise SchemaError(f"{name}: the full name changed between versions: {full_names}")
        current = found[-1]
        for old in found[:-1]:
            self._check_evolution(old, current)
        for v in found:
            other = self._by_fp.get(v.fingerprint)
            if other is not None:
                raise SchemaError(
                    f"{name} v{v.version} has the same canonical form as "
                    f"{other.name} v{other.version}"
                )
            self._by_fp[v.fingerprint] = v
        self._versions[name] = tuple(found)

    @staticmethod
    def _load_file(name: str, version: int, path: Path) -> SchemaVersion:
        try:
            raw = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise SchemaError(f"{path}: cannot read schema: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("type") != "record":
            raise SchemaError(f"{path}: top-level schema must be a record")
        try:
            parsed, fp, full_name = parse_schema_json(raw)
        except SchemaError as exc:
            raise SchemaError(f"{path}: {exc}") from exc
        if full_name.rsplit(".", 1)[-1] != name:
            raise SchemaError(
                f"{path}: record name {full_name!r} does not match directory {name!r}"
            )
        return SchemaVersion(name, full_name, version, fp, parsed, raw)

    @staticmethod
    def _check_evolution(old: SchemaVersion, current: SchemaVersion) -> None:
        """Enforce the rule: later versions never remove or rename fields; added ones default."""
        old_fields = _field_map(old.raw)
        new_fields = _field_map(current.raw)
        removed = sorted(set(old_fields) - set(new_fields))
        if removed:
            raise SchemaError(
                f"{current.name} v{current.version} removes or renames fields of "
                f"v{old.version}: {removed}"
            )
        for fname, field in new_fields.items():
            if fname not in old_fields and "default" not in field:
                raise SchemaError(
                    f"{current.name} v{current.version} adds field {fname!r} "
                    f"without a default (not readable from v{old.version})"
                )

    def names(self) -> tuple[str, ...]:
        return tuple(self._versions)

    def current(self, name: str) -> SchemaVersion:
        try:
            return self._versions[name][-1]
        except KeyError:
            raise SchemaError(f"unknown schema {name!r}") from None

    def versions(self, name: str) -> tuple[SchemaVersion, ...]:
        try:
            return self._versions[name]
        except KeyError:
            raise SchemaError(f"unknown schema {name!r}") from None

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fp.get(fp)

    def by_full_name(self, full_name: str) -> SchemaVersion | None:
        """The current version of the schema with this full (or simple) record name."""
        for versions in self._versions.values():
            cur = versions[-1]
            if full_name in (cur.full_name, cur.name):
                return cur
        return None

    def __iter__(self) -> Iterator[SchemaVersion]:
        for versions in self._versions.values():
            yield from versions


@cache
def default_registry() -> SchemaRegistry:
    """The registry over :func:`default_schemas_dir`, loaded once."""
    return SchemaRegistry()

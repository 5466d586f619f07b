"""docker-compose.yml read the way Compose reads it, without Docker.

``compose_env(service, host_map)`` is the environment Compose gives one service: YAML anchors
and merge keys resolved, ``${VAR:-default}`` interpolated with the defaults only (as if no
variable were set in the shell or an .env file), and the compose network's host names rewritten
through ``host_map`` (``kafka:9092`` -> the local broker, ``postgres:5432`` -> the local
database), so a test can start the real worker and sink with exactly that environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A host name (or host:port) stands alone: not inside a longer name ("postgresql://").
_HOST_CHAR = r"[A-Za-z0-9_.-]"


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable has no default, or a malformed ``${...}``."""


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as YAML gives it (anchors and ``<<`` merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def interpolate(text: str) -> str:
    """Compose's interpolation with every variable unset: ``${VAR:-default}`` and
    ``${VAR-default}`` give their default (itself interpolated), ``${VAR}``, ``$VAR`` and
    ``${VAR:+alt}`` give "", ``${VAR:?err}`` raises, ``$$`` is a literal ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 1)
            out.append(_expand(text[i + 2 : end]))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            i = match.end()  # $VAR, unset
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _expand(body: str) -> str:
    match = _NAME.match(body)
    if match is None:
        raise InterpolationError(f"invalid interpolation ${{{body}}}")
    name, rest = match.group(), body[match.end() :]
    if rest == "":
        return ""
    for operator in (":-", "-"):
        if rest.startswith(operator):
            return interpolate(rest[len(operator) :])
    for operator in (":?", "?"):
        if rest.startswith(operator):
            raise InterpolationError(f"{name} is required: {rest[len(operator) :]}")
    for operator in (":+", "+"):
        if rest.startswith(operator):
            return ""
    raise InterpolationError(f"invalid interpolation ${{{body}}}")


def interpolate_all(value: Any) -> Any:
    """``interpolate`` applied to every string value of a parsed compose document."""
    if isinstance(value, str):
        return interpolate(value)
    if isinstance(value, Mapping):
        return {key: interpolate_all(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate_all(item) for item in value]
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def service_environment(compose: Mapping[str, Any], service: str) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``KEY=value`` list), interpolated. A key
    without a value (taken from the shell by Compose) is left out: it is unset here."""
    try:
        spec = compose["services"][service]
    except KeyError:
        raise KeyError(f"docker-compose.yml has no service {service!r}") from None
    raw = spec.get("environment") or {}
    if isinstance(raw, list):
        pairs: dict[str, Any] = {}
        for item in raw:
            key, sep, value = str(item).partition("=")
            pairs[key] = value if sep else None
        raw = pairs
    return {
        str(key): interpolate(_scalar(value)) for key, value in raw.items() if value is not None
    }


def rewrite_hosts(value: str, host_map: Mapping[str, str]) -> str:
    """Replaces each ``host`` or ``host:port`` of ``host_map`` where it stands alone in
    ``value`` (a bootstrap list, a URL's authority); longer keys first."""
    for source in sorted(host_map, key=len, reverse=True):
        pattern = re.compile(rf"(?<!{_HOST_CHAR}){re.escape(source)}(?!{_HOST_CHAR})")
        value = _replace_all(pattern, host_map[source], value)
    return value


def _replace_all(pattern: re.Pattern[str], replacement: str, value: str) -> str:
    # No backslash or group escapes in the replacement: it is a literal host name.
    parts = pattern.split(value)
    return replacement.join(parts)


def compose_env(
    service: str, host_map: dict[str, str], compose_file: Path = COMPOSE_FILE
) -> dict[str, str]:
    """The environment docker-compose.yml gives ``service``, defaults only, with its host
    names rewritten through ``host_map`` (e.g. ``{"kafka:9092": "127.0.0.1:19092",
    "postgres:5432": "127.0.0.1:55432"}``)."""
    env = service_environment(load_compose(compose_file), service)
    return {key: rewrite_hosts(value, host_map) for key, value in env.items()}

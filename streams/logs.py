"""Logging set-up shared by every ``recon`` process: one JSON object per line, secrets masked.

``RECON_LOG_FORMAT`` picks ``json`` (the default, for log shippers) or ``text`` (for a
terminal); ``RECON_LOG_LEVEL`` the level. A line's correlation fields (``reference``,
``event_id``, ``match_id``, ``exception_id``, ``topic``, ``partition``, ``offset``) are passed
as ``extra=`` and become top-level keys.

Secrets are masked in the handler, after formatting, so a password is replaced wherever it
appears: in our messages, in a library's, in a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from pythonjsonlogger.json import JsonFormatter

# Settings whose whole value is a secret, and settings holding a URL with one in it.
SECRET_SETTINGS = (
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_KEY_PASSWORD",
    "PGPASSWORD",
    "POSTGRES_PASSWORD",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
)
URL_SETTINGS = ("DATABASE_URL", "SCHEMA_REGISTRY_URL")
MASK = "***"
# Passwords by their place, whatever their length: ``scheme://user:PASSWORD@`` and
# ``password=PASSWORD`` (libpq keyword strings, librdkafka and psycopg messages).
_PLACED = re.compile(
    r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s\"']*:)([^@\s\"'\\]+)(@)"
    r"|(\bpassword\s*=\s*)([^\s\"'\\),;}]+)"
)  # a value stops at quotes and backslashes: masking runs on the JSON line


def url_secrets(url: str) -> list[str]:
    """The password of a URL (``scheme://user:password@host``) and of a libpq
    ``password=...`` keyword string, raw and percent-decoded."""
    found: list[str] = []
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    for part in url.split():
        key, _, value = part.partition("=")
        if key.strip() == "password" and value:
            found.append(value.strip("'\""))
    return found


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    found: list[str] = []
    for name in SECRET_SETTINGS:
        value = env.get(name, "")
        if value:
            found.append(value)
            if name.endswith("USER_INFO") and ":" in value:
                found.append(value.split(":", 1)[1])
    for name in URL_SETTINGS:
        found += url_secrets(env.get(name, ""))
    # Longest first, so a secret that contains another is masked whole. A short value is
    # masked only by its place (see _PLACED): masking it everywhere would garble ordinary
    # words, such as the local default password "recon" in every topic name.
    return sorted({s for s in found if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


MIN_SECRET_LENGTH = 8


def _placed(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return f"{m.group(1)}{MASK}{m.group(3)}"
    return f"{m.group(4)}{MASK}"


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _PLACED.sub(_placed, text)


class RepeatFilter(logging.Filter):
    """Lets the same warning or error (logger, level, message) through once per ``window_s``:
    an outage of a minute is a few lines saying what is down, not thousands of reconnect
    attempts. The next line after a quiet spell says how many were held back."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} (and {last[1]} more like it in {now - last[0]:.0f}s)"
        if len(self._seen) > 10_000:  # bounded, whatever the messages
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True


class _Masking(logging.Formatter):
    """Wraps a formatter and masks the secrets in what it writes."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return mask(self.inner.format(record), self.secrets)


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        json_ensure_ascii=False,
    )


def text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure(
    level: str | None = None,
    fmt: str | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Route every logger to stderr through one masking handler. ``level`` / ``fmt`` override
    ``RECON_LOG_LEVEL`` / ``RECON_LOG_FORMAT``."""
    env = os.environ if env is None else env
    level_name = (level or env.get("RECON_LOG_LEVEL") or "INFO").strip().upper()
    fmt_name = (fmt or env.get("RECON_LOG_FORMAT") or "json").strip().lower()
    inner = text_formatter() if fmt_name == "text" else json_formatter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Masking(inner, secrets_from_env(env)))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level_name, logging.INFO))
    # librdkafka's and aiokafka's chatter stays at WARNING unless asked for.
    if root.level > logging.DEBUG:
        for noisy in ("aiokafka", "kafka"):
            logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))

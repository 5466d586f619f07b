"""Generations: what a replay rebuilds results into.

A replay runs the deployed code and config over the inputs from their start, into a new
generation: its own worker group and state (app id), output topics, sink group and PostgreSQL
schema. The inputs are shared. Generation 0 uses the plain names, so a deployment that never
replayed has no suffixes. ``RECON_GENERATION`` selects the generation a process belongs to;
every name below derives from the base names and it, so the worker, the sink and the operator
commands agree on them (connectors/postgres/generations.py switches readers between them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from streams.exceptions import ConfigError
from streams.settings import TopicNames, get_int

MAX_IDENTIFIER = 63  # PostgreSQL's


def generation_from_env(env: Mapping[str, str]) -> int:
    n = get_int(env, "RECON_GENERATION", 0)
    if n < 0:
        raise ConfigError("RECON_GENERATION must be 0 or more")
    return n


def app_id(base: str, n: int) -> str:
    return base if n == 0 else f"{base}-g{n}"


def output_topics(topics: TopicNames, n: int) -> TopicNames:
    if n == 0:
        return topics
    return replace(
        topics,
        matched=f"{topics.matched}.g{n}",
        exceptions=f"{topics.exceptions}.g{n}",
        dlq=f"{topics.dlq}.g{n}",
    )


def schema(base: str, n: int) -> str:
    name = base if n == 0 else f"{base}_g{n}"
    if len(name) > MAX_IDENTIFIER:
        raise ConfigError(f"schema {name!r} of generation {n} is longer than {MAX_IDENTIFIER}")
    return name


def sink_group(base: str, n: int) -> str:
    return base if n == 0 else f"{base}-g{n}"


def data_dir(base: Path, n: int) -> Path:
    """A generation's local state starts empty: its own directory."""
    return base if n == 0 else base / f"g{n}"

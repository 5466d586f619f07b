"""Dependencies point one way, read from the sources with ast (every import, the lazy ones
inside functions too).

- The sink (``connectors``) depends on the shared kernel only: the contract, the settings and a
  few leaf helpers (KERNEL), never on the worker, the engine, the operator commands or the CLI.
- The kernel depends on nothing else of ours, so the sink cannot reach the worker through it.
- Of ``streams``, only the modules that compose both sides import ``connectors``: the CLI (one
  module, explicit imports, nothing loaded by name), the demo and the operator commands.
- No import cycle between packages (a sub-package such as ``streams.worker``, or a top-level
  module such as ``streams.settings``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "connectors")

#: What ``connectors`` may import from ``streams``: the contract (a package), the settings and
#: the leaf helpers the sink shares with the worker (exceptions and exit codes, the generation's
#: names, backoff, logging, dependency health).
KERNEL = (
    "streams.contract",
    "streams.settings",
    "streams.exceptions",
    "streams.generation",
    "streams.backoff",
    "streams.logs",
    "streams.health",
)
#: The modules of ``streams`` that compose the worker's side and the sink's.
COMPOSERS = ("streams.cli", "streams.demo", "streams.ops")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@cache
def _sources() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__)."""
    found: dict[str, tuple[Path, bool]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _resolve(name: str) -> str:
    """The module an imported name lives in (``streams.settings.get_int`` -> streams.settings)."""
    modules = _sources()
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


@cache
def imports_of(module: str) -> frozenset[str]:
    """The modules of ours that ``module`` imports."""
    path, is_package = _sources()[module]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from streams import generation" imports the module streams.generation
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(_resolve(n) for n in names if n.split(".")[0] in PACKAGES)


def _modules(prefix: str) -> Iterator[str]:
    return (m for m in _sources() if _within(m, (prefix,)))


def package_of(module: str) -> str:
    """The node of the package graph: the sub-package a module is in (streams.worker), or the
    module itself when it sits at the top of ``streams`` (streams.settings)."""
    _, is_package = _sources()[module]
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    if len(package) >= 2:
        return ".".join(package[:2])
    return "connectors" if parts[0] == "connectors" else module


def test_the_sources_are_found() -> None:
    assert {"streams.cli", "connectors.loop", "connectors.postgres.writer"} <= set(_sources())


def test_the_sink_depends_on_the_kernel_only() -> None:
    wrong = {
        module: sorted(i for i in imports_of(module) if i.startswith("streams") and not _within(i, KERNEL))
        for module in _modules("connectors")
    }  # fmt: skip
    assert {m: i for m, i in wrong.items() if i} == {}


def test_the_kernel_depends_on_nothing_else_of_ours() -> None:
    kernel = [m for m in _sources() if _within(m, KERNEL)]
    assert "streams.contract.model" in kernel
    wrong = {
        module: sorted(i for i in imports_of(module) if i != "streams" and not _within(i, KERNEL))
        for module in kernel
    }  # fmt: skip
    assert {m: i for m, i in wrong.items() if i} == {}


def test_only_the_composing_modules_import_the_sink() -> None:
    importers = {
        module
        for module in _modules("streams")
        if any(i.startswith("connectors") for i in imports_of(module))
    }
    assert "streams.cli" in importers
    assert {m for m in importers if not _within(m, COMPOSERS)} == set()


def test_the_cli_imports_every_subcommand_explicitly() -> None:
    path, _ = _sources()["streams.cli"]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    loaders = [
        node
        for node in ast.walk(tree)
        if (isinstance(node, ast.Import) and any(a.name == "importlib" for a in node.names))
        or (isinstance(node, ast.Name) and node.id == "__import__")
    ]
    assert loaders == []
    assert {"connectors.postgres.run", "connectors.postgres.db", "streams.worker.cli"} <= (
        imports_of("streams.cli")
    )


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start)
        if found:
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for module in _sources():
        for imported in imports_of(module):
            a, b = package_of(module), package_of(imported)
            if a != b:
                graph.setdefault(a, set()).add(b)
    assert {"streams.worker", "streams.contract", "connectors.postgres"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or ())


def test_a_cycle_is_found() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}}) is None

"""The packages' layering: every module imports on its own, each package imports only the
packages below it, and no two modules of one package import each other in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the project packages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "ledger": frozenset(),
    # and of ledger only CONSENSUS_MAY_USE (test_consensus_uses_only_ledger_types)
    "consensus": frozenset({"ledger"}),
    "genesis": frozenset({"ledger"}),
    "node": frozenset({"ledger", "consensus", "genesis"}),
    "cli": frozenset({"ledger", "consensus", "genesis", "node"}),
}
PACKAGES = tuple(ALLOWED)
# What consensus may use of the ledger: its own types, the codec, crypto and the shared
# error base; nothing of the transaction model (tx, commands, block, state).
CONSENSUS_MAY_USE = frozenset(
    {"ledger.commit", "ledger.codec", "ledger.constants", "ledger.crypto", "ledger.errors"}
)


# The one HTTP client (issue 12): only these modules may open HTTP connections to nodes;
# node/ serves HTTP (aiohttp.web) and never dials it.
HTTP_CLIENT_MODULES = frozenset({"cli.http"})
HTTP_CLIENT_LIBRARIES = ("urllib.request", "http.client", "aiohttp", "requests", "httpx")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module named by an import anywhere in the file (top level, in functions,
    under TYPE_CHECKING); `from X import Y` yields X.Y when that is a module, else X."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")
                parent = parent if is_package else parent[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES else base


def _graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (a package's name stands for its
    __init__)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph[module] = {
            name for name in _imported(module, path) if name in MODULES and name != module
        }
    return graph


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules along it (first repeated at the end)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                done.add(path.pop())
            elif child in path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def _package(module: str) -> str:
    return module.split(".", 1)[0]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_alone(module: str) -> None:
    """A fresh interpreter imports the module by itself (no circle that only works when
    another module happened to be imported first)."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_packages_import_only_lower_layers() -> None:
    violations = sorted(
        f"{module} imports {name}"
        for module, names in _graph().items()
        for name in names
        if _package(name) != _package(module) and _package(name) not in ALLOWED[_package(module)]
    )
    assert violations == []


def test_consensus_uses_only_ledger_types() -> None:
    used = sorted(
        f"{module} imports {name}"
        for module, names in _graph().items()
        if _package(module) == "consensus"
        for name in names
        if _package(name) == "ledger" and name not in CONSENSUS_MAY_USE
    )
    assert used == []


def _external_imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module


def test_one_http_client_module() -> None:
    """Outside cli.http nobody imports an HTTP client library, except node/ for aiohttp's
    server side (aiohttp.web), which never opens a client session."""
    offenders = []
    for module, path in MODULES.items():
        if module in HTTP_CLIENT_MODULES:
            continue
        for name in _external_imports(path):
            if _package(module) == "node" and (name == "aiohttp" or name.startswith("aiohttp.")):
                if "ClientSession" in path.read_text():
                    offenders.append(f"{module} opens an aiohttp ClientSession")
                continue
            if any(name == lib or name.startswith(lib + ".") for lib in HTTP_CLIENT_LIBRARIES):
                offenders.append(f"{module} imports {name}")
    assert offenders == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_within_package(package: str) -> None:
    graph = _graph()
    inside = {
        module: {name for name in names if _package(name) == package}
        for module, names in graph.items()
        if _package(module) == package
    }
    cycle = _find_cycle(inside)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"a"}}) == ["a", "a"]

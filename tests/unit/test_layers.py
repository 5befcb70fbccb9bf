"""The modules of chalicelib/ form layers: no module imports, even only for type checking, one
that imports it back, so a newcomer can read them from the bottom up."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chalicelib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each chalicelib module → the chalicelib modules it imports."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        # The package itself is only a namespace: `from chalicelib import x` imports x.
        graph[name] = {other for other in found & set(modules) if other not in ("chalicelib", name)}
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A chain of imports from `start` back to itself, if there is one."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        for other in sorted(graph[name]):
            if other == start:
                return [*path, start]
            if other not in seen:
                seen.add(other)
                stack.append((other, [*path, other]))
    return None


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle_through(graph, "a") == ["a", "b", "c", "a"]
    assert cycle_through(graph, "d") is None


def test_no_module_of_chalicelib_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "chalicelib.wire.api" in graph["chalicelib.store.jobs"]
    cycles = [" → ".join(found) for name in sorted(graph)
              if (found := cycle_through(graph, name)) is not None]
    assert cycles == []


def test_no_module_of_chalicelib_outgrows_two_screens():
    # ~400 lines: past that a module holds more than one noun and is split by noun.
    sizes = {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text().splitlines())
             for path in PACKAGE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 420} == {}

"""The rooms of the tree and which way their imports point (README "Layout").

Bottom-up: the book core, the vocabulary (hub), the transport (bus), then the
five services that know nothing of each other, then the composition root (app).
An import may only point to a lower room; nothing in the product imports the
test helpers (testing/, tests/); no two modules import each other at load time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

LEVEL = {
    "orderbook_core": 0,
    "hub": 1,
    "bus": 2,
    "feedhandler": 3,
    "trading": 3,
    "fanout": 3,
    "recorder": 3,
    "client": 3,
    "app": 4,
}
HELPERS = {"testing", "tests"}
Edge = tuple[str, str, bool]  # importing module, imported module, at load time


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[Edge]:
    """Every import of a first-party module in ``path``; lazy ones (inside a function or
    under TYPE_CHECKING) are marked as not at load time."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_of(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    rooms = set(LEVEL) | HELPERS

    def visit(node: ast.AST, eager: bool) -> Iterator[Edge]:
        for child in ast.iter_child_nodes(node):
            lazy = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] in rooms:
                        yield me, alias.name, eager
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                if base.split(".")[0] in rooms:
                    yield me, base, eager
            yield from visit(child, eager and not lazy)

    yield from visit(tree, True)


def product_edges() -> list[Edge]:
    edges: list[Edge] = []
    for room in LEVEL:
        for path in sorted((ROOT / room).rglob("*.py")):
            edges.extend(imports(path))
    return edges


def violations(edges: list[Edge]) -> list[str]:
    """Imports that point sideways or up, or into the test helpers."""
    out = []
    for me, target, _eager in edges:
        a, b = me.split(".")[0], target.split(".")[0]
        if b in HELPERS:
            out.append(f"{me} imports the test helper {target}")
        elif a != b and LEVEL[b] >= LEVEL[a]:
            out.append(f"{me} (room {a}, level {LEVEL[a]}) imports {target} (level {LEVEL[b]})")
    return out


def cycles(edges: list[Edge], modules: set[str]) -> list[list[str]]:
    """Load-time import cycles between modules (a package's import runs its __init__)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for me, target, eager in edges:
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]  # ``from pkg.mod import name``
        if eager and target in modules and target != me:
            graph[me].add(target)
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                found.append([*stack[stack.index(n) :], n])
            elif n not in state:
                walk(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)
    return found


def test_imports_point_only_down() -> None:
    edges = product_edges()
    assert len(edges) > 250  # the walk saw the tree
    assert violations(edges) == []


def test_no_load_time_import_cycles() -> None:
    modules = {module_of(p) for room in LEVEL for p in (ROOT / room).rglob("*.py")}
    assert cycles(product_edges(), modules) == []


def test_the_checks_catch_what_they_forbid() -> None:
    bad = [
        ("hub.events", "bus.local", True),  # up
        ("fanout.node", "trading.venue", False),  # sideways, even when lazy
        ("trading.feed", "testing.mock_venue", True),  # a test helper
        ("bus.local", "hub.events", True),  # fine
    ]
    assert len(violations(bad)) == 3
    loop = [("hub.a", "hub.b", True), ("hub.b", "hub.a", True), ("hub.c", "hub.a", False)]
    assert cycles(loop, {"hub.a", "hub.b", "hub.c"}) == [["hub.a", "hub.b", "hub.a"]]
    assert cycles(loop[1:], {"hub.a", "hub.b", "hub.c"}) == []


def test_only_the_product_ships() -> None:
    import tomllib

    from setuptools import find_packages  # type: ignore[import-untyped]

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    names = set(find_packages(str(ROOT), include=find["packages"]["find"]["include"]))
    expected = {module_of(p.parent) for room in LEVEL for p in (ROOT / room).rglob("__init__.py")}
    assert names == expected

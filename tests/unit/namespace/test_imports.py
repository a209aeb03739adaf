"""The modules of nsd.namespace import one another without circles, counting imports made
only for type checking: each layer reads from the ones below it (names, inode, layouts,
intents, mounts, image, tree)."""

from __future__ import annotations

import ast
from pathlib import Path

import nsd.namespace

PACKAGE = Path(nsd.namespace.__file__).parent
PREFIX = "nsd.namespace"


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that `path` imports (the package itself is "__init__")."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PREFIX:
                out |= {a.name if a.name in modules else "__init__" for a in node.names}
            elif node.module.startswith(PREFIX + "."):
                out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names if a.name.startswith(PREFIX + ".")}
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph` as [a, b, ..., a], or [] if there is none."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        for dep in sorted(graph.get(module, ())):
            cycle = visit(dep, [*path, module])
            if cycle:
                return cycle
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return []


def package_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {p.stem: imported_modules(p, modules) - {p.stem} for p in PACKAGE.glob("*.py")}


def test_no_import_circles_inside_the_namespace_package() -> None:
    graph = package_graph()
    assert {"tree", "inode", "names", "layouts", "mounts", "intents", "image"} <= graph.keys()
    assert find_cycle(graph) == [], "import circle: " + " -> ".join(find_cycle(graph))


def test_the_circle_finder_finds_circles() -> None:
    assert find_cycle({"tree": {"mounts"}, "mounts": {"layouts"}, "layouts": {"tree"}}) == [
        "layouts",
        "tree",
        "mounts",
        "layouts",
    ]
    assert find_cycle({"tree": {"mounts", "layouts"}, "mounts": {"layouts"}, "layouts": set()}) == []

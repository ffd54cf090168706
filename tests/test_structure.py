"""The package's imports: no circle among modules, and no import inside a function unless
it breaks one (the app factory and the web package, which their own modules import)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "consent_center"
# Imported inside a function on purpose: the package roots (their comment says why).
DEFERRING = {"__init__.py", "web/__init__.py"}


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text())
        for path in PACKAGE.rglob("*.py")
    }


def _module_name(relative: str) -> str:
    parts = ["consent_center", *Path(relative).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(relative: str, node: ast.ImportFrom) -> list[str]:
    """The consent_center modules an import names (the module, or its submodules)."""
    package = _module_name(relative).split(".")
    if not relative.endswith("__init__.py"):
        package = package[:-1]
    if node.level:
        base = package[: len(package) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("consent_center"):
        return []
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def test_no_import_inside_a_function_that_breaks_no_circle():
    offenders = []
    for relative, tree in _modules().items():
        if relative in DEFERRING:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                offenders += [
                    f"{relative}:{sub.lineno}"
                    for sub in ast.walk(node)
                    if isinstance(sub, ast.Import | ast.ImportFrom)
                ]
    assert not offenders, offenders


def test_no_import_circle_among_the_services_and_below():
    """Every import (at the top or in a function) of the services, models, domain and
    notify modules, as a graph: it has no circle."""
    trees = {
        _module_name(relative): (relative, tree)
        for relative, tree in _modules().items()
        if relative not in DEFERRING
        and relative.split("/")[0] in {"services", "models", "domain", "notify"}
        or "/" not in relative
        and relative not in DEFERRING
    }
    graph = {
        name: {
            target
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for target in _imported(relative, node)
            # A module's own packages load before it anyway: no edge back to them.
            if target in trees and not name.startswith(target + ".")
        }
        for name, (relative, tree) in trees.items()
    }
    state: dict[str, int] = {}
    circle: list[str] = []

    def visit(name: str, path: list[str]) -> bool:
        state[name] = 1
        for target in graph[name]:
            if state.get(target) == 1:
                circle.extend(path[path.index(target):] + [name, target])
                return True
            if target not in state and visit(target, path + [name]):
                return True
        state[name] = 2
        return False

    for name in sorted(graph):
        if name not in state and visit(name, []):
            break
    assert not circle, " -> ".join(circle)

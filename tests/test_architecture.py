"""The code's structure, checked: the layers run one way and no module imports itself back.

    api/<family>/ -> inference types -> gateway/ -> engines/ -> store/

Imports made only for type checking (``if TYPE_CHECKING:``) count too: a circle hidden behind
one is still a circle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "hearth"
# What each layer must never import (a lower layer reaching up, or a sideways shortcut).
FORBIDDEN = {
    "hearth.store": ("hearth.api", "hearth.gateway", "hearth.engines", "hearth.cli", "hearth.app"),
    "hearth.engines": ("hearth.api", "hearth.gateway", "hearth.cli", "hearth.app"),
    "hearth.inference": ("hearth.api", "hearth.gateway", "hearth.engines", "hearth.store", "hearth.cli"),
    "hearth.gateway": ("hearth.api", "hearth.cli", "hearth.app"),
    "hearth.api": ("hearth.cli", "hearth.app"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The hearth modules ``path`` imports when it runs, at the top level or in a function
    (``from package import submodule`` imports the submodule, not the package's own names)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    found.update(a.name for a in sub.names if a.name.startswith("hearth"))
                elif isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("hearth"):
                    for alias in sub.names:
                        child = f"{sub.module}.{alias.name}"
                        found.add(child if child in modules else sub.module)

    visit(ast.parse(path.read_text()).body)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    names = set(modules)
    return {
        name: {m for m in imports(path, names) if m in names and m != name} for name, path in modules.items()
    }


def test_the_layers_run_one_way() -> None:
    wrong = [
        (module, target)
        for module, targets in graph().items()
        for layer, forbidden in FORBIDDEN.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if target.startswith(forbidden)
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    edges = graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)
    assert circles == []

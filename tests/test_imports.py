"""No import cycle in mtlzoo/, not even through imports inside functions.

Every ``import`` / ``from ... import`` statement of every module counts (module level, inside functions,
inside ``try``); only ``if TYPE_CHECKING:`` blocks are skipped, since they never run. An edge goes to the
deepest mtlzoo module a statement names (``from mtlzoo import losses`` -> ``mtlzoo.losses``,
``from mtlzoo.models.factory import MODELS`` -> ``mtlzoo.models.factory``); the parent packages a dotted
import initialises are not counted as edges of their own, as for any Python package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "mtlzoo"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree except those under ``if TYPE_CHECKING:``."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        stack.extend(children)
    return found


def _deepest(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The mtlzoo modules one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([node.module] if node.module else []))
        subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        names = subs + ([base] if len(subs) < len(node.names) else [])
    return {t for t in (_deepest(n, modules) for n in names if n.split(".")[0] == "mtlzoo") if t and t != module}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: the mtlzoo modules it imports}`` for every module under ``root``."""
    modules = _modules(root)
    return {name: set().union(*[_targets(name, path, n, modules) for n in _import_nodes(ast.parse(path.read_text()))])
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None when the graph is acyclic (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_mtlzoo_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "mtlzoo.models.factory" in graph["mtlzoo.models"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layering_hub_below_models_and_engine_below_balancers() -> None:
    """hub builds no model; the balancer engine imports only the step contract and its helpers (Jacobians, the
    choice of Jacobian mode, learnable weights)."""
    graph = import_graph()
    hub = {m for m in graph if m.startswith("mtlzoo.hub")}
    assert not {t for m in hub for t in graph[m] if t.startswith("mtlzoo.models")}
    assert "mtlzoo.hub.load" in graph["mtlzoo.models.factory"]
    assert graph["mtlzoo.balancers.engine"] <= {"mtlzoo.balancers.contract", "mtlzoo.balancers.jacobian",
                                                 "mtlzoo.balancers.learnable", "mtlzoo.balancers.auto_jacobian"}
    assert graph["mtlzoo.balancers.auto_jacobian"] <= {"mtlzoo.balancers.contract", "mtlzoo.balancers.jacobian"}


@pytest.mark.parametrize("source, cyclic", [
    ("import mtlzoo.b\n", True),                                      # module level
    ("def f():\n    from mtlzoo import b\n", True),                     # lazy, inside a function
    ("def f():\n    from . import b\n", True),                          # lazy and relative
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mtlzoo.b\n", False),  # never runs
    ("import os\n", False),
])
def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path, source: str, cyclic: bool) -> None:
    package = tmp_path / "mtlzoo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(source)
    (package / "b.py").write_text("from mtlzoo.a import f\n")
    assert (find_cycle(import_graph(package)) is not None) is cyclic


def _documented_layers() -> dict[str, int]:
    """``{package: layer}`` from the table of docs/architecture.md (rows ``| n | `pkg`, `pkg` | ... |``)."""
    layers = {}
    for line in (ROOT.parent / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            layers.update({name.strip(" `"): int(cells[0]) for name in cells[1].split(",")})
    return layers


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_documented_layering_holds() -> None:
    """Every import between two packages goes to a lower layer of docs/architecture.md; every package is there."""
    layers = _documented_layers()
    graph = import_graph()
    assert sorted({_package(m) for m in graph} - set(layers)) == [], "add these packages to docs/architecture.md"
    upward = [f"{m} -> {t}" for m, targets in graph.items() for t in targets
              if _package(m) != _package(t) and layers[_package(m)] <= layers[_package(t)]]
    assert not upward, "imports against the layering of docs/architecture.md: " + "; ".join(sorted(upward))

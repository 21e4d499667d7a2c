"""No import cycle inside machine/ and drivers/ (installed as machine.drivers): every import that runs counts,
function-level ones included, since a cycle hidden in a function is still a cycle in the design. Only imports
under `if TYPE_CHECKING:` are left out: they never run (a helper module may name its driver class in
annotations)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"machine": REPO / "machine", "machine.drivers": REPO / "drivers"}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for prefix, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join([prefix, *parts])] = path
    return mods


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, except in `if TYPE_CHECKING:` blocks."""
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name | ast.Attribute) and \
            (getattr(node.test, "id", None) or getattr(node.test, "attr", None)) == "TYPE_CHECKING":
        return [n for child in node.orelse for n in _imports(child)]
    found = [node] if isinstance(node, ast.Import | ast.ImportFrom) else []
    return found + [n for child in ast.iter_child_nodes(node) for n in _imports(child)]


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of machine/ and drivers/ it imports (anywhere in its body)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if _is_package(path) else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                while target and target not in mods:  # `import machine.x.y` -> the deepest known module
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    assert "machine.provision.precreate" in graph["machine.provision"]  # imported inside prepare()
    assert "machine.drivers.qemu.accel" in graph["machine.drivers.qemu"]  # `from . import accel` / `.accel`
    assert "machine.orchestrator" in graph["machine.swarm.clusters"]
    assert "machine.drivers.qemu" not in graph["machine.drivers.qemu.lifecycle"]  # only under TYPE_CHECKING there


def test_cycles_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []

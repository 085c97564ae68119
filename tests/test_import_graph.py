"""The import graph of ``mlops_kit`` has no cycles.

The graph is built from the source with ``ast`` (nothing is imported), at module granularity:

* every ``import`` / ``from ... import`` counts, at module level and inside functions; only the
  body of an ``if TYPE_CHECKING:`` block is skipped (its ``else`` branch counts);
* relative imports are resolved against the importing module's package;
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a submodule, else to
  ``pkg`` (its ``__init__``), and importing ``pkg.sub`` also imports ``pkg`` and every package
  above it, as Python does, except the packages that enclose the importer (Python has already
  started those before the importer's first line runs);
* a package (``pkg/__init__.py``) shadows a same-named ``pkg.py``, as Python's finder does.

Layers depend one way: the workspace layout (``workspace``, ``_io``, ``_time``, ``_sqlite``,
``errors``) at the bottom; ``features``, ``governance``, ``registry``, ``quality``,
``datasets``, ``aggregates``, ``rollout`` above it; ``evidence``, ``labs`` and ``cli`` on top.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = "mlops_kit"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

Graph = Mapping[str, Mapping[str, list[str]]]  # module -> imported module -> ["file:line", ...]


# -- building the graph ------------------------------------------------------------------
def discover_modules(package_dir: Path, package: str) -> dict[str, Path]:
    """Every importable module of a regular package: dotted name -> source file."""
    found: dict[str, Path] = {package: package_dir / "__init__.py"}
    for entry in sorted(package_dir.iterdir()):
        if entry.name.startswith((".", "__pycache__")):
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            found.update(discover_modules(entry, f"{package}.{entry.name}"))
        elif entry.is_file() and entry.suffix == ".py" and entry.name != "__init__.py":
            if not (package_dir / entry.stem / "__init__.py").is_file():  # else the package wins
                found[f"{package}.{entry.stem}"] = entry
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    """Collects ``(module or None, names or None, level, lineno)`` for every import statement."""

    def __init__(self) -> None:
        self.found: list[tuple[str | None, list[str] | None, int, int]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, None, 0, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node.module, [a.name for a in node.names], node.level, node.lineno))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def build_graph(package_dir: Path, package: str) -> dict[str, dict[str, list[str]]]:
    """The internal import graph of ``package``: module -> {imported module: [where]}."""
    modules = discover_modules(package_dir, package)
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        enclosing = set(_ancestors(name)) | ({name} if is_package else set())
        rel = path.relative_to(package_dir.parent).as_posix()
        collector = _ImportCollector()
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for module, names, level, lineno in collector.found:
            where = f"{rel}:{lineno}"
            if level:
                base = here.split(".")
                if level - 1 >= len(base):
                    raise AssertionError(f"{where}: relative import goes above the top package")
                base = base[: len(base) - (level - 1)]
                target = ".".join(base + ([module] if module else []))
            else:
                target = module or ""
            edges: set[str] = {a for a in _ancestors(target) if a not in enclosing}
            if names is None:  # import a.b.c
                edges.add(target)
            else:
                if target not in enclosing:
                    edges.add(target)  # the package's __init__ runs first
                for item in names:
                    edges.add(f"{target}.{item}" if f"{target}.{item}" in modules else target)
            for edge in edges:
                if edge in modules:
                    graph[name].setdefault(edge, []).append(where)
    return graph


# -- finding cycles ----------------------------------------------------------------------
def strongly_connected_components(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); each component sorted, components in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return sorted(components)


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The cycles to report: one shortest cycle through each module of every component with
    more than one module, and every self loop; each as ``[a, b, ..., a]``, deduplicated."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for component in strongly_connected_components(graph):
        members = set(component)
        if len(component) == 1:
            node = component[0]
            if node in set(graph.get(node, ())):
                cycles.append([node, node])
            continue
        for start in component:
            parent: dict[str, str] = {}
            queue = deque([start])
            path: list[str] | None = None
            while queue and path is None:
                node = queue.popleft()
                for child in sorted(graph.get(node, ())):
                    if child not in members:
                        continue
                    if child == start:
                        path = [start]
                        step = node
                        while step != start:
                            path.append(step)
                            step = parent[step]
                        path = [start, *reversed(path[1:]), start]
                        break
                    if child not in parent:
                        parent[child] = node
                        queue.append(child)
            assert path is not None  # every member of a component lies on a cycle
            ring = path[:-1]
            turn = ring.index(min(ring))
            key = tuple(ring[turn:] + ring[:turn])
            if key not in seen:
                seen.add(key)
                cycles.append([*key, key[0]])
    return cycles


def describe(cycles: list[list[str]], graph: Graph | None = None) -> str:
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle))
        if graph is not None:
            for a, b in zip(cycle, cycle[1:]):
                lines.append(f"    {a} -> {b}  ({', '.join(graph[a][b])})")
    return "\n".join(lines)


# -- the cycle finder itself ---------------------------------------------------------------
def test_cycle_finder_finds_a_cycle_and_a_self_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "a"}}
    assert strongly_connected_components(graph) == [["a", "b", "c"], ["d"], ["e"]]
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert describe(find_cycles(graph)) == "a -> b -> c -> a\ne -> e"


def test_cycle_finder_reports_every_ring_of_a_component():
    # two rings sharing "a": a -> b -> a and a -> c -> d -> a
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": {"d"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "a"], ["a", "c", "d", "a"]]


def test_cycle_finder_passes_a_dag():
    graph = {"a": {"b", "c"}, "b": {"c", "d"}, "c": {"d"}, "d": set()}
    assert find_cycles(graph) == []
    assert strongly_connected_components(graph) == [["a"], ["b"], ["c"], ["d"]]


def test_graph_builder_follows_python_import_rules(tmp_path):
    files = {
        "pkg/__init__.py": "from .a import A\n",
        "pkg/a.py": "A = 1\n\ndef load():\n    from .sub.leaf import thing\n    return thing\n",
        "pkg/sub/__init__.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ..a import A\nelse:\n    import json\n"
            "from . import leaf\n"
        ),
        "pkg/sub/leaf.py": "import pkg.b\nthing = 2\n",
        "pkg/b.py": "from pkg import a\n",
        "pkg/c.py": "from . import A\nimport os.path\n",
        "pkg/d.py": "raise ImportError('shadowed by the package pkg/d/')\nfrom .c import x\n",
        "pkg/d/__init__.py": "from .. import c\n",
        "pkg/notes/readme.py": "from .. import b  # not a package: no __init__.py\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = build_graph(tmp_path / "pkg", "pkg")
    assert {k: sorted(v) for k, v in graph.items()} == {
        "pkg": ["pkg.a"],
        "pkg.a": ["pkg.sub", "pkg.sub.leaf"],   # function-level import; pkg.sub's __init__ runs too
        "pkg.sub": ["pkg.sub.leaf"],            # the TYPE_CHECKING edge to pkg.a is ignored
        "pkg.sub.leaf": ["pkg.b"],              # `import pkg.b`: pkg encloses the importer
        "pkg.b": ["pkg.a"],                     # a submodule, not the attribute of pkg
        "pkg.c": ["pkg"],                       # an attribute of pkg: needs pkg/__init__
        "pkg.d": ["pkg.c"],                     # the package pkg/d/ shadows pkg/d.py
    }
    assert graph["pkg.a"]["pkg.sub.leaf"] == ["pkg/a.py:4"]
    assert find_cycles(graph) == [
        ["pkg.a", "pkg.sub.leaf", "pkg.b", "pkg.a"],             # the shortest ring through pkg.a
        ["pkg.a", "pkg.sub", "pkg.sub.leaf", "pkg.b", "pkg.a"],  # the one through pkg.sub
    ]


# -- the package -------------------------------------------------------------------------
def test_the_graph_covers_the_package():
    graph = build_graph(PACKAGE_DIR, PACKAGE)
    assert {"mlops_kit", "mlops_kit.workspace", "mlops_kit.features", "mlops_kit.evidence.quiz"} <= set(graph)
    assert "mlops_kit.errors" in graph["mlops_kit.workspace"]
    assert "mlops_kit.workspace" in graph["mlops_kit.governance._common"]
    assert "mlops_kit.evidence.quiz" in graph["mlops_kit.evidence.recorder"]
    assert sum(len(v) for v in graph.values()) > len(graph)  # a real graph, not an empty one


def test_mlops_kit_has_no_import_cycles():
    graph = build_graph(PACKAGE_DIR, PACKAGE)
    cycles = find_cycles(graph)
    tangles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, (
        f"{len(cycles)} import cycle(s) in {PACKAGE} (break them so layers depend one way; "
        f"see this file's docstring). Tangled modules: "
        + "; ".join(", ".join(c) for c in tangles) + "\n" + describe(cycles, graph)
    )

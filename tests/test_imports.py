"""No import circles inside the package, whether the import is at module level or inside a function.

A late import (inside a function) only hides a circle between layers until someone moves it to
the top; so every ``import``/``from ... import`` in every module of ``invlatent`` counts, read from
the source (AST, relative imports resolved). Nodes are modules (a package is its ``__init__``);
``from pkg import name`` points at the submodule ``pkg.name`` when there is one, else at ``pkg``.
The implicit import of a parent package's ``__init__`` (which only re-exports) is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "invlatent"
#: Edges allowed to close a circle. Empty, and it stays empty: a name kept at an old path for one
#: release is served through ``invlatent._deprecated.moved_attribute`` (an import by name when the
#: old name is used), which adds no edge to this graph.
ALLOWED_CIRCLE_EDGES: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, modules) -> set[str]:
    """The package modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in modules and t != name and (name, t) not in ALLOWED_CIRCLE_EDGES}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_walk_sees_late_and_relative_imports():
    """Sanity checks of the walk itself, on imports known to exist."""
    g = _graph()
    assert "invlatent.groups.base" in g["invlatent.quotient._metric"]          # module level, relative
    assert "invlatent.quotient._knn" in g["invlatent.groups._permutation"]     # inside a method
    assert "invlatent._blockwise" in g["invlatent.groups.base"]                # inside a method


def test_cycle_detection_finds_a_planted_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(g) == [["a", "b", "c"]]


def test_the_allow_list_is_empty():
    assert not ALLOWED_CIRCLE_EDGES


def test_the_package_has_no_import_circle():
    cycles = _cycles(_graph())
    assert not cycles, "import circles (module-level or inside functions): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_the_old_image_circle_stays_broken():
    """``groups._image`` and the image rotations used to import each other; now one way only."""
    g = _graph()
    assert "invlatent.images._rotate" in g["invlatent.groups._image"]
    assert not any(m.startswith("invlatent.groups") for m in g["invlatent.images._rotate"])

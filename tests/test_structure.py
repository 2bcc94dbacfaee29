"""The library's shape, checked on its source: no import cycles (lazy imports inside functions
count too), no module reaching into another's private names."""
from __future__ import annotations

import ast
import pathlib

import blurfaces

LIB = pathlib.Path(blurfaces.__file__).parent


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in LIB.rglob("*.py"):
        parts = p.relative_to(LIB.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: pathlib.Path, mods) -> set[str]:
    """The blurfaces modules `name` imports anywhere in its source (relative imports)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in mods else target)
    return {m for m in found if m in mods and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, done = [], set()

    def visit(v, trail):
        if v in trail:
            cycles.append(trail[trail.index(v):] + [v])
            return
        if v in done:
            return
        for w in sorted(graph[v]):
            visit(w, trail + [v])
        done.add(v)

    for v in sorted(graph):
        visit(v, [])
    return cycles


def test_no_import_cycles_not_even_through_lazy_imports():
    """Issue 17: model <-> quantize, and stages -> blurfaces (for __version__) -> api -> jobs
    -> runner -> stages, hidden behind imports inside functions."""
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert _cycles(graph) == []
    assert graph["blurfaces.options"] <= {"blurfaces.errors"}     # config records are leaves
    assert graph["blurfaces._version"] == set()


def test_no_module_uses_another_modules_private_names():
    """`other._name` or `from .other import _name` across modules of the library: none."""
    mods = _modules()
    short = {m.rsplit(".", 1)[-1] for m in mods} | {"st", "datamod"}
    bad = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                bad += [f"{name}: from {node.module} import {a.name}" for a in node.names
                        if a.name.startswith("_") and a.name != "__version__"]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name) \
                    and node.value.id in short:
                bad.append(f"{name}: {node.value.id}.{node.attr}")
    assert bad == []

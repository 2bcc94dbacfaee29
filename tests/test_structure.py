"""The library's shape, checked on its source: no import cycles (lazy imports inside functions
count too), no module reaching into another's private names; and the repository's: tests,
benchmarks and scripts import each other by package name, never by editing sys.path, and no
test module is imported as a helper."""
from __future__ import annotations

import ast
import pathlib
import re

import blurfaces

LIB = pathlib.Path(blurfaces.__file__).parent
REPO = pathlib.Path(__file__).resolve().parents[1]


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


# Private names of the standard library the modules may use: os._exit (leave at once, in a
# forked child or a signal handler) and io.RawIOBase._checkClosed (the base class's check).
STDLIB_PRIVATE = {"_exit", "_checkClosed"}


def _own_names(tree: ast.AST) -> set[str]:
    """Every name a module defines or binds: functions, classes, variables, attributes it
    assigns (self._x = ...), parameters, imports."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
        elif isinstance(node, ast.alias):
            own.add(node.asname or node.name.split(".")[0])
    return own


def test_no_private_attribute_of_another_module_is_used():
    """`anything._name` (an object of another module's class too: `storage._head(...)`) where
    `_name` is not defined in the module that uses it: none (issue 17's `\\._[a-z]` grep)."""
    bad = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        own = _own_names(tree) | STDLIB_PRIVATE
        bad += [f"{name}:{node.lineno}: {ast.unparse(node)}" for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__") and node.attr not in own]
    assert bad == []


def test_the_private_attribute_check_sees_a_call_into_another_modules_internals():
    tree = ast.parse("def f(s):\n    return s._head('k')\n")
    assert "_head" not in _own_names(tree)
    assert "_head" in _own_names(ast.parse("class S:\n    def _head(self, k):\n        pass\n"))


# sys.path.insert/append/extend/remove, sys.path[...] = ..., sys.path = / += ..., site.addsitedir
SYS_PATH_EDIT = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend|remove|pop|clear)\s*\("
                           r"|\[[^\]]*\]\s*=|\+=|=(?!=))|site\.addsitedir")


def _repo_sources():
    for top in ("tests", "bench", "scripts", "functions", "layers", ".ci"):
        for p in sorted((REPO / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and (
                    p.suffix in (".py", ".sh") or top in ("scripts", ".ci")):
                yield p


def test_nothing_edits_sys_path():
    """tests/, bench/ and scripts/ import helpers as packages (tests.media, bench.hardclips,
    tests.integration.helpers) with the repository root on the path: no file edits sys.path."""
    files = [p for p in _repo_sources() if p != pathlib.Path(__file__).resolve()]  # its examples
    assert REPO / "tests" / "conftest.py" in files and REPO / "scripts" / "demo.sh" in files
    bad = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
           for p in files for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
           if SYS_PATH_EDIT.search(line)]
    assert bad == []


def test_the_sys_path_check_sees_the_usual_edits():
    for line in ("sys.path.insert(0, str(HERE))", "sys.path.append('tests')",
                 "sys.path[:0] = [d]", "sys.path += [d]", "sys.path = [d] + sys.path",
                 "site.addsitedir(d)", "python -c \"import sys; sys.path.insert(0, 'tests')\""):
        assert SYS_PATH_EDIT.search(line), line
    for line in ("if d not in sys.path:", "print(sys.path)", "paths == sys.path"):
        assert not SYS_PATH_EDIT.search(line), line


def test_no_test_module_is_imported_as_a_helper():
    """Shared helpers live in modules that are not tests (tests/media.py,
    tests/integration/helpers.py, ...): importing a test_*.py module runs its tests twice and
    hides fixtures in it."""
    bad = []
    for p in _repo_sources():
        if p.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names] \
                if isinstance(node, ast.ImportFrom) else []
            bad += [f"{p.relative_to(REPO)}:{node.lineno}: {n}" for n in names
                    if n.rsplit(".", 1)[-1].startswith("test_")]
    assert bad == []

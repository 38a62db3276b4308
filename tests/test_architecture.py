"""The layering rules of ARCHITECTURE.md, checked on the source: no import cycle
among bayesmix modules, fit/ (and compare, summary, derived) import no family
module and name no family's parameter, nothing outside families/ inspects a
family with getattr/hasattr, and no module is longer than ~600 lines."""

import ast
from pathlib import Path

import pytest

import bayesmix as bm
from bayesmix import families

ROOT = Path(bm.__file__).resolve().parent
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("bayesmix",) + path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """bayesmix modules imported anywhere in the file (function-level imports too);
    ``from pkg import name`` counts as importing pkg.name when that is a module."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
            out |= subs or {node.module}
    return {m for m in out if m in MODULES}


def _graph() -> dict[str, set[str]]:
    return {m: _imports(p) - {m} for m, p in MODULES.items()}


def _find_cycle(graph):
    state, stack = {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                return stack[stack.index(v):] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        state[u] = "done"
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = _graph()
    # a package's __init__ re-exports its modules; edges *into* an __init__ from
    # its own submodules would be a cycle only through that re-export
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


FAMILY_BLIND = [m for m in MODULES if m.startswith("bayesmix.fit") or m in (
    "bayesmix.compare", "bayesmix.derived")]


def test_family_blind_modules_import_no_family():
    assert "bayesmix.fit.summary" in FAMILY_BLIND
    for m in FAMILY_BLIND:
        bad = sorted(d for d in _imports(MODULES[m]) if d.startswith("bayesmix.families"))
        assert not bad, f"{m} imports {bad}"


def _parameter_names() -> set[str]:
    names = set()
    for name in bm.REGISTRY:
        for two_level in (False, True):
            fam = families.example(name, two_level)
            if fam is not None:
                names |= set(fam.free_names) | set(fam.reported_names)
                names |= {n.name for n in fam.model.deterministics}
    return names


def test_family_blind_modules_name_no_parameter():
    params = _parameter_names()
    assert {"tau", "alpha", "psi", "class_share", "gamma_cd"} <= params
    for m in FAMILY_BLIND:
        tree = ast.parse(MODULES[m].read_text())
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not strings & params, f"{m} names parameter(s) {sorted(strings & params)}"


FAMILY_OBJECTS = ("model", "fam", "family", "m")


def _family_introspection(path: Path) -> list[str]:
    """getattr/hasattr calls whose object is a family (``model``, ``fam``, ``x.model``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            target = ast.unparse(node.args[0]) if node.args else ""
            if target in FAMILY_OBJECTS or target.endswith(".model") or target.startswith("state.get('model')"):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_introspection_check_catches_a_planted_case(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f(res, model):\n    return getattr(res.model, 'path', 1) + hasattr(model, 'k')\n")
    assert len(_family_introspection(f)) == 2


def test_no_getattr_on_a_family_outside_families():
    for m, path in MODULES.items():
        if m.startswith("bayesmix.families"):
            continue
        assert not _family_introspection(path), f"{m}: {_family_introspection(path)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_short(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module}: {n} lines"

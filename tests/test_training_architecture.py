"""Structure of insightface_g2d.training: no import cycles, and no stage-kind name outside the
kind's own module (the registry refers to kinds by class, not by name)."""
import ast
from pathlib import Path

import pytest

from insightface_g2d.training.kinds import STAGE_KINDS

PACKAGE = Path(__file__).resolve().parents[1] / "insightface_g2d"
TRAINING = PACKAGE / "training"


def module_name(path, package=PACKAGE):
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path, known, package_root=PACKAGE):
    """The modules of `known` that `path` imports, at module level or inside functions."""
    name = module_name(path, package_root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def import_graph(folder, package_root=PACKAGE):
    files = {module_name(p, package_root): p for p in folder.rglob("*.py")}
    return {name: imports_of(path, files, package_root) for name, path in files.items()}


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_are_edges(tmp_path):
    pkg = tmp_path / "insightface_g2d" / "training"
    pkg.mkdir(parents=True)
    (pkg / "one.py").write_text("def f():\n    from .two import g\n")
    (pkg / "two.py").write_text("from . import one\n")
    graph = import_graph(pkg, tmp_path / "insightface_g2d")
    assert graph["insightface_g2d.training.one"] == {"insightface_g2d.training.two"}
    assert find_cycle(graph)


def test_training_has_no_import_cycles():
    graph = import_graph(TRAINING)
    assert "insightface_g2d.training.kinds.reform" in graph and graph["insightface_g2d.training.stages"]
    assert find_cycle(graph) is None


def test_the_whole_package_has_no_import_cycles():
    graph = import_graph(PACKAGE)
    assert "insightface_g2d.embedders.registry" in graph and "insightface_g2d.cli.train" in graph
    assert find_cycle(graph) is None


def _docstrings(tree):
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _names_kind(text, kinds):
    """Kinds that a string constant names: the whole string, or quoted inside it (a message)."""
    return {k for k in kinds if text == k or f"'{k}'" in text or f'"{k}"' in text}


def _is_kind_access(node):
    """stage.kind, spec["kind"], spec.get("kind")."""
    if isinstance(node, ast.Attribute) and node.attr == "kind":
        return True
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "kind":
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "kind")


def kind_name_uses(path, kinds, strings=None):
    """Sorted lines where `path` uses a stage-kind name of `kinds` in code: a comparison with a
    kind attribute/key anywhere; with `strings` (default: files under training/) also any string
    constant, docstrings excepted, that names a kind."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    in_training = TRAINING in path.parents if strings is None else strings
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = set()
            for side in sides:
                for sub in ast.walk(side):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        named |= _names_kind(sub.value, kinds)
            if named and any(_is_kind_access(sub) for side in sides for sub in ast.walk(side)):
                found.append(node.lineno)
        elif in_training and isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if _names_kind(node.value, kinds):
                found.append(node.lineno)
    return sorted(set(found))


def test_the_scan_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    code = ('"""Docstrings may say reform."""\n'
            'def f(stage, spec):\n'
            '    a = stage.kind == "reform"\n'
            '    b = spec.get("kind") != "arcface"\n'
            '    c = spec["kind"] in ("inpaint", "x")\n'
            '    return "finetune"\n')
    sample.write_text(code)
    assert kind_name_uses(sample, set(STAGE_KINDS), strings=True) == [3, 4, 5, 6]
    assert kind_name_uses(sample, set(STAGE_KINDS), strings=False) == [3, 4, 5]  # outside training/


def test_a_margin_kind_is_not_a_stage_kind():
    """losses/heads.py compares a local `kind` (the margin type) with "arcface": not a stage kind."""
    assert kind_name_uses(PACKAGE / "losses" / "heads.py", set(STAGE_KINDS)) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_stage_kind_name_outside_its_own_module(path):
    own = {kind for kind, cls in STAGE_KINDS.items() if cls.__module__ == module_name(path)}
    others = set(STAGE_KINDS) - own
    assert kind_name_uses(path, others) == []

"""The package's layers: a module imports only from its own layer or the ones below it.

    errors, fileio, version, devices  ->  backbones, losses, data  ->  masks  ->  faces
    ->  embedders, teachers, evaluation  ->  training, recognition  ->  experiments  ->  cli

data (aligned faces) knows nothing of photos or masks; masks draw on aligned faces; the front end
(faces) trains on masked faces.

Read from the source with ast, function-local imports included (they are how upward imports hide).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "insightface_g2d"
LAYERS = (
    ("errors", "fileio", "version", "devices", "dlib_models"),
    ("backbones", "losses", "data"),
    ("masks",),
    ("faces",),
    ("embedders", "teachers", "evaluation"),
    ("training", "recognition"),
    ("experiments",),
    ("cli",),
)
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top_level(path):
    """'data' for insightface_g2d/masks/synthesizer.py, 'errors' for insightface_g2d/errors.py."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_modules(source, package):
    """(line, dotted module) of every import of insightface_g2d in `source`, at any depth.
    `package`: the dotted package the source's module is in (where relative imports start)."""
    here = package.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                if node.module:
                    yield node.lineno, ".".join(base + node.module.split("."))
                else:  # from . import a, b: each name may be a module
                    for alias in node.names:
                        yield node.lineno, ".".join(base + [alias.name])
            elif node.module and node.module.split(".")[0] == "insightface_g2d":
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "insightface_g2d":
                    yield node.lineno, alias.name


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_part_of_the_package_has_a_layer():
    unknown = sorted({_top_level(p) for p in MODULES} - set(LAYER_OF))
    assert not unknown, f"add {unknown} to LAYERS in {__file__}"


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_no_upward_imports(path):
    mine = LAYER_OF[_top_level(path)]
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    module = ".".join(parts)
    package = module if path.name == "__init__.py" else ".".join(parts[:-1])
    upward = []
    for line, target in _imported_modules(path.read_text(encoding="utf-8"), package):
        parts = target.split(".")
        if len(parts) < 2:
            continue  # the package itself: `insightface_g2d.__version__`-style access
        theirs = LAYER_OF.get(parts[1])
        if theirs is not None and theirs > mine:
            upward.append(f"line {line}: {target} ({LAYERS[theirs][0]} layer)")
    assert not upward, f"{module} imports from a higher layer: " + "; ".join(upward)


def test_the_check_sees_function_local_and_relative_imports():
    source = ("import os\nfrom insightface_g2d.errors import DataError\n\n\ndef f():\n"
              "    from ..cli.common import run_cli\n    from . import align\n"
              "    import insightface_g2d.training.config\n")
    assert list(_imported_modules(source, "insightface_g2d.data")) == [
        (2, "insightface_g2d.errors"), (6, "insightface_g2d.cli.common"), (7, "insightface_g2d.data.align"),
        (8, "insightface_g2d.training.config")]

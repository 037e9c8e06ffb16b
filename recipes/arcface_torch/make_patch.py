#!/usr/bin/env python
"""Write g2d.patch: the G2D change to insightface's arcface_torch, as one `git apply` patch.

    python recipes/arcface_torch/make_patch.py PATH/TO/insightface/recognition/arcface_torch

From a pristine arcface_torch folder (never modified: the work happens on a copy) it makes the
change -- a block at the top of ``get_model`` in ``backbones/__init__.py`` that hands the ``g2d*``
names (G2D, also cut from a pretrained network: g2d_r100, g2d_dlib) and ``dlib_resnet`` to
``insightface_g2d.get_model``, and the recipe configs (``recipes/configs/*.py``) copied to
``configs/`` with a ``g2d_`` prefix -- and writes ``git diff`` of it, with paths from the root of
an insightface repository (``recognition/arcface_torch/...``), below a short header.

Run it again whenever recipes/configs/*.py change; tests/test_arcface_patch.py fails until the
patch carries the current configs. Needs git; reads the version from insightface_g2d/version.py.
"""
import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG_PREFIX = "g2d"
BEGIN_MARK = "# >>> insightface_g2d "
END_MARK = "# <<< insightface_g2d "


def package_version():
    """insightface_g2d's version, read from its version.py (no import of the package needed)."""
    scope = {}
    exec((REPO / "insightface_g2d" / "version.py").read_text(), scope)
    return scope["__version__"]


def config_name(file_name):
    """The name a recipe config gets in arcface_torch's configs/ (none replaces one of its own)."""
    return file_name if file_name.startswith(CONFIG_PREFIX) else f"{CONFIG_PREFIX}_{file_name}"


def recipe_configs(configs_dir):
    """[(recipe config path, name in arcface_torch's configs/)], sorted by file name."""
    files = sorted(p for p in Path(configs_dir).glob("*.py") if not p.name.startswith("_"))
    if not files:
        raise SystemExit(f"error: no recipe configs (*.py) in {configs_dir}")
    return [(p, config_name(p.name)) for p in files]


def get_model_block(version, indent, name_arg="name", kwargs_arg="kwargs"):
    """The lines put at the top of get_model's body, ending with newlines."""
    inner = indent + "    "
    return [
        f"{indent}{BEGIN_MARK}{version} >>> G2D backbones and dlib's ResNet from the insightface_g2d package\n",
        f'{indent}if isinstance({name_arg}, str) and {name_arg}.startswith(("g2d", "dlib_resnet")):\n',
        f"{inner}from insightface_g2d import get_model as g2d_get_model\n",
        f"{inner}return g2d_get_model({name_arg}, **{kwargs_arg})\n",
        f"{indent}{END_MARK}{version} <<<\n",
    ]


def add_get_model_block(source, version):
    """arcface_torch's backbones/__init__.py source with the block at the top of get_model's body
    (after its docstring, if it has one)."""
    if BEGIN_MARK in source:
        raise SystemExit("error: backbones/__init__.py already has a G2D block: give a pristine arcface_torch")
    funcs = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "get_model"]
    if not funcs or not funcs[-1].args.args or funcs[-1].args.kwarg is None:
        raise SystemExit("error: backbones/__init__.py has no 'def get_model(name, **kwargs)'")
    func = funcs[-1]
    lines = source.splitlines(keepends=True)
    first = func.body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
        and isinstance(first.value.value, str)
    if docstring:
        at = first.end_lineno
    else:  # right after the (possibly multi-line) header, above comment lines that open the body
        at = first.lineno - 1
        while at > func.lineno and (not lines[at - 1].strip() or lines[at - 1].lstrip().startswith("#")):
            at -= 1
    indent = lines[first.lineno - 1][:first.col_offset]
    block = get_model_block(version, indent, func.args.args[0].arg, func.args.kwarg.arg)
    return "".join(lines[:at] + block + lines[at:])


def _git(cwd, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="g2d", GIT_AUTHOR_EMAIL="g2d@localhost",
               GIT_COMMITTER_NAME="g2d", GIT_COMMITTER_EMAIL="g2d@localhost")
    proc = subprocess.run(["git", "-c", "core.autocrlf=false", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"error: git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def header(version):
    return (f"G2D backbones and recipe configs for arcface_torch (insightface_g2d {version}).\n"
            "\n"
            "In an insightface git clone, at its root:          git apply --verbose g2d.patch\n"
            "In an arcface_torch folder outside any git clone:  git apply --verbose -p3 g2d.patch\n"
            "(Not -p3 inside a clone: git then skips every file, silently. patch -p1 works at the root.)\n"
            "Made by recipes/arcface_torch/make_patch.py from a pristine arcface_torch and recipes/configs.\n"
            "\n")


def make_patch(checkout, configs_dir=REPO / "recipes" / "configs", version=None):
    """The text of g2d.patch for the arcface_torch folder ``checkout`` (left unchanged)."""
    checkout = Path(checkout)
    if not (checkout / "backbones" / "__init__.py").is_file() or not (checkout / "configs").is_dir():
        raise SystemExit(f"error: {checkout} is not arcface_torch (no backbones/__init__.py or configs/); "
                         "give insightface's recognition/arcface_torch folder")
    version = version or package_version()
    configs = recipe_configs(configs_dir)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "recognition" / "arcface_torch"
        shutil.copytree(checkout, root, ignore=shutil.ignore_patterns("__pycache__", ".git", "work_dirs"))
        _git(tmp, "init", "-q")
        _git(tmp, "add", "-A")
        _git(tmp, "commit", "-q", "-m", "arcface_torch as found")
        init = root / "backbones" / "__init__.py"
        init.write_bytes(add_get_model_block(init.read_bytes().decode("utf-8"), version).encode("utf-8"))
        for src, name in configs:
            if (root / "configs" / name).exists():
                raise SystemExit(f"error: {checkout}/configs/{name} exists: give a pristine arcface_torch")
            shutil.copyfile(src, root / "configs" / name)
        _git(tmp, "add", "-A")
        diff = _git(tmp, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-renames", "--abbrev=7",
                    "--src-prefix=a/", "--dst-prefix=b/", "-U3")
    return header(version) + diff


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="make_patch.py", description=__doc__.split("\n\n")[0],
        epilog="example:\n  python recipes/arcface_torch/make_patch.py ~/insightface/recognition/arcface_torch",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a pristine insightface recognition/arcface_torch folder (not modified)")
    parser.add_argument("--out", default=str(HERE / "g2d.patch"), help="patch to write (default: %(default)s)")
    parser.add_argument("--configs", default=str(REPO / "recipes" / "configs"),
                        help="recipe configs to add (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when --out differs from what would be written")
    args = parser.parse_args(argv)
    text = make_patch(args.checkout, args.configs)
    out = Path(args.out)
    if args.check:
        same = out.is_file() and out.read_text(encoding="utf-8") == text
        print(f"{out} is up to date" if same else f"{out} is out of date: run {parser.prog} without --check")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The G2D recipe configs that the installer copies into an arcface_torch ``configs/`` folder.

Recipe configs are arcface_torch job files (a module defining ``config = edict()``). In the
checkout each gets a ``g2d`` prefix unless it has one (``ms1mv3_r100.py`` ->
``g2d_ms1mv3_r100.py``), so that none replaces one of arcface_torch's own configs of the same
name, and ``train_v2.py configs/g2d_ms1mv3_r100.py`` reads as what it is.
"""
import ast
from pathlib import Path

from .errors import IntegrationError

PREFIX = "g2d"


def installed_name(file_name):
    """File name a recipe config gets in arcface_torch's configs/ folder."""
    return file_name if file_name.startswith(PREFIX) else f"{PREFIX}_{file_name}"


def candidate_dirs():
    """Where the recipe configs are looked for, in order: inside the installed package, then the
    repository's ``recipes/configs`` next to the package (an editable or source install)."""
    package = Path(__file__).resolve().parents[1]
    return [package / "recipes" / "configs", package.parent / "recipes" / "configs"]


def default_configs_dir():
    """The first candidate folder that holds recipe configs; IntegrationError if none does."""
    for cand in candidate_dirs():
        if cand.is_dir() and any(_config_files(cand)):
            return cand
    looked = ", ".join(str(c) for c in candidate_dirs())
    raise IntegrationError(
        f"the G2D recipe configs were not found (looked in {looked}); pass --configs DIR with the "
        "recipes/configs folder of the insightface_g2d repository")


def recipe_configs(src_dir):
    """[(source path, installed file name)] for the configs in ``src_dir``, sorted by name.

    Raises IntegrationError if the folder is missing, holds no config, or a file does not define
    a module-level ``config``, or two files would get the same installed name.
    """
    src_dir = Path(src_dir).expanduser()
    if not src_dir.is_dir():
        raise IntegrationError(f"configs folder {src_dir} does not exist; pass --configs with the recipes/configs folder")
    files = list(_config_files(src_dir))
    if not files:
        raise IntegrationError(f"configs folder {src_dir} holds no config (*.py) files")
    out, seen = [], {}
    for path in files:
        _check_config(path)
        name = installed_name(path.name)
        if name in seen:
            raise IntegrationError(
                f"{path.name} and {seen[name]} in {src_dir} would both be installed as configs/{name}; rename one")
        seen[name] = path.name
        out.append((path, name))
    return out


def _config_files(src_dir):
    return sorted(p for p in Path(src_dir).glob("*.py")
                  if p.is_file() and not p.name.startswith("_") and p.name != "conftest.py")


def _check_config(path):
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as err:
        raise IntegrationError(f"config {path} is not valid Python ({err.msg}, line {err.lineno})") from None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "config" for t in targets):
            return
    raise IntegrationError(
        f"{path} is not an arcface_torch config: it must define 'config = edict()' at module level")

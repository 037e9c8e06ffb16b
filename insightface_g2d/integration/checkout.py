"""Recognise an arcface_torch checkout (insightface's ``recognition/arcface_torch`` folder)."""
import re
from pathlib import Path

from .errors import IntegrationError

GET_MODEL_FILE = "backbones/__init__.py"
CONFIGS_DIR = "configs"
MANIFEST_NAME = ".g2d_install.json"
# What every arcface_torch checkout has, and what the installer touches or relies on.
REQUIRED = (GET_MODEL_FILE, "configs/base.py", "train_v2.py")
_DEF_GET_MODEL = re.compile(rb"^def get_model\(", re.MULTILINE)


def open_checkout(path):
    """The resolved root of the arcface_torch checkout at ``path``.

    Raises IntegrationError saying what was expected (and, for an insightface repository root,
    where its arcface_torch folder is) when ``path`` is not one.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise IntegrationError(f"{root} is not a folder; give the path of insightface's recognition/arcface_torch")
    root = root.resolve()
    missing = [rel for rel in REQUIRED if not (root / rel).is_file()]
    if not missing and not _DEF_GET_MODEL.search((root / GET_MODEL_FILE).read_bytes()):
        missing.append(f"a module-level 'def get_model(name, **kwargs)' in {GET_MODEL_FILE}")
    if missing:
        hint = ""
        nested = root / "recognition" / "arcface_torch"
        if (nested / GET_MODEL_FILE).is_file():
            hint = f"; this looks like an insightface repository: did you mean {nested}?"
        raise IntegrationError(
            f"{root} is not an arcface_torch checkout: expected {', '.join(REQUIRED)} with "
            f"'def get_model(name, **kwargs)' in {GET_MODEL_FILE} (insightface's recognition/arcface_torch "
            f"folder); missing: {', '.join(missing)}{hint}")
    return root

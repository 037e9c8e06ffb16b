"""``.g2d_install.json``: what ``g2d-arcface install`` changed in a checkout, so that
``uninstall`` can undo exactly that.

    {
      "format": 1,
      "installed_by": "insightface_g2d",
      "version": "0.1.0",
      "get_model": {"path": "backbones/__init__.py",
                    "original_sha256": "<file without the block>", "installed_sha256": "<with it>"},
      "configs": {"configs/g2d_demo.py": {"source": "demo.py", "sha256": "<as copied>"}}
    }

No timestamps: installing twice writes the same bytes, so the second install changes nothing.
"""
import json
import re

from .checkout import GET_MODEL_FILE, MANIFEST_NAME
from .errors import IntegrationError

FORMAT = 1
_CONFIG_REL = re.compile(r"^configs/[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def render_manifest(version, original_sha256, installed_sha256, configs):
    """Manifest bytes. configs: {rel: {"source": name, "sha256": hex}}."""
    doc = {
        "format": FORMAT,
        "installed_by": "insightface_g2d",
        "version": version,
        "get_model": {"path": GET_MODEL_FILE, "original_sha256": original_sha256,
                      "installed_sha256": installed_sha256},
        "configs": {rel: dict(configs[rel]) for rel in sorted(configs)},
        "note": "written by `g2d-arcface install`; `g2d-arcface uninstall` reads it to restore this checkout",
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def read_manifest(root):
    """The manifest of checkout ``root`` as a dict, or None when there is none.

    Raises IntegrationError for a manifest that is not one this tool wrote (the uninstaller deletes
    the files it lists, so it only trusts ``configs/*.py`` entries with sha256 values).
    """
    path = root / MANIFEST_NAME
    if not path.exists():
        return None
    fix = (f"; if you did not edit it, restore {GET_MODEL_FILE} and configs/ from git (or a fresh "
           f"arcface_torch) and delete {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise IntegrationError(f"{path} is unreadable or not JSON ({err}){fix}") from None
    if not isinstance(doc, dict) or doc.get("installed_by") != "insightface_g2d":
        raise IntegrationError(f"{path} was not written by g2d-arcface{fix}")
    if doc.get("format") != FORMAT:
        raise IntegrationError(
            f"{path} has format {doc.get('format')!r}, this insightface_g2d reads format {FORMAT}: "
            f"uninstall with the insightface_g2d version that installed it ({doc.get('version')}){fix}")
    get_model = doc.get("get_model")
    configs = doc.get("configs")
    if (not isinstance(get_model, dict) or not _SHA.match(str(get_model.get("original_sha256", "")))
            or not isinstance(configs, dict)):
        raise IntegrationError(f"{path} is malformed (get_model / configs entries){fix}")
    for rel, entry in configs.items():
        if (not _CONFIG_REL.match(rel) or not isinstance(entry, dict)
                or not _SHA.match(str(entry.get("sha256", "")))):
            raise IntegrationError(f"{path} has a malformed config entry {rel!r}{fix}")
    return doc

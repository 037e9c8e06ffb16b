"""Install G2D into an arcface_torch checkout, and take it out again.

``plan_install`` / ``plan_uninstall`` read the checkout and return a ``Plan`` (the list of file
changes plus notes for the user) without writing anything; ``Plan.apply()`` makes all its
changes or none. ``install`` / ``uninstall`` are plan + apply.

Install: the marked block at the top of ``backbones/__init__.py``'s ``get_model`` (see
``block.py``), the recipe configs copied into ``configs/`` (``configs.py``), and the manifest
``.g2d_install.json`` (``manifest.py``). Uninstall removes the block, the configs that are still
as installed, and the manifest, which gives back the original files byte for byte.
"""
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from ..version import __version__
from . import block as blockmod
from .checkout import CONFIGS_DIR, GET_MODEL_FILE, MANIFEST_NAME, open_checkout
from .configs import default_configs_dir, recipe_configs
from .errors import IntegrationError
from .fileops import Change, apply_changes, is_regular_file, sha256_bytes, unified_diff
from .manifest import read_manifest, render_manifest


@dataclass
class Plan:
    """What a command will change in checkout ``root``."""

    action: str
    root: Path
    changes: List[Change] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.changes)

    def diff(self, context=3):
        """The changes as a unified diff (paths relative to the checkout)."""
        return unified_diff(self.changes, context)

    def summary(self):
        """One line per changed file: 'add/modify/delete PATH'."""
        return [f"{c.kind:6s} {c.rel}" for c in self.changes]

    def apply(self, write=None):
        """Make every change or none (see fileops.apply_changes)."""
        if self.changes:
            apply_changes(self.root, self.changes, write=write)
        return self


def _reads_files(fn):
    """Turn an unreadable file (permissions, I/O error) into an IntegrationError naming it."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as err:
            raise IntegrationError(f"cannot read {err.filename or 'a file'}: {err.strerror or err}; "
                                   "nothing was changed") from None
    return wrapper


def _read_get_model_file(root):
    data = (root / GET_MODEL_FILE).read_bytes()
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrationError(f"{root / GET_MODEL_FILE} is not UTF-8 text; restore it from git") from None


@_reads_files
def plan_install(path, configs_dir=None, version=__version__):
    """The plan that installs G2D ``version`` into the checkout at ``path``.

    configs_dir: folder of recipe configs to copy (default: this package's recipe configs).
    Raises IntegrationError (nothing written) for an unrecognised checkout, a config that would
    replace a file not installed by this tool, or an installed config edited since.
    """
    root = open_checkout(path)
    manifest = read_manifest(root)
    plan = Plan("install", root)

    old_bytes, text = _read_get_model_file(root)
    found = blockmod.find_blocks(text)
    original = blockmod.strip_blocks(text)
    new_bytes = blockmod.insert_block(original, version).encode("utf-8")
    if new_bytes != old_bytes:
        plan.changes.append(Change(GET_MODEL_FILE, old_bytes, new_bytes))
        if found:
            old_versions = ", ".join(sorted({b.version for b in found}))
            plan.notes.append(f"{GET_MODEL_FILE}: replacing the insightface_g2d {old_versions} block with {version}")
    else:
        plan.notes.append(f"{GET_MODEL_FILE}: the insightface_g2d {version} block is already there")

    src_dir = Path(configs_dir) if configs_dir is not None else default_configs_dir()
    previous = manifest["configs"] if manifest else {}
    recorded = {}
    for src, name in recipe_configs(src_dir):
        rel = f"{CONFIGS_DIR}/{name}"
        dest = root / rel
        data = src.read_bytes()
        entry = {"source": src.name, "sha256": sha256_bytes(data)}
        if not dest.exists() and not dest.is_symlink():
            plan.changes.append(Change(rel, None, data))
            recorded[rel] = entry
            continue
        if not is_regular_file(dest):
            raise IntegrationError(f"{dest} exists and is not a regular file; move it away and install again")
        current = dest.read_bytes()
        if rel in previous:
            if sha256_bytes(current) != previous[rel]["sha256"]:
                raise IntegrationError(
                    f"{dest} was edited after g2d-arcface installed it; nothing was changed: save your edits "
                    f"under another name (outside the g2d prefix), delete {dest}, and install again")
            if current != data:
                plan.changes.append(Change(rel, current, data))
            recorded[rel] = entry
        elif current == data:
            plan.notes.append(f"{rel}: already there with the same content (not installed by g2d-arcface, "
                              "e.g. from g2d.patch); left as is, and uninstall will leave it")
        else:
            raise IntegrationError(
                f"{dest} exists and was not installed by g2d-arcface; nothing was changed: rename or remove it "
                f"(or install other configs with --configs) and install again")
    for rel in sorted(set(previous) - set(recorded)):
        dest = root / rel
        if is_regular_file(dest):
            current = dest.read_bytes()
            if sha256_bytes(current) == previous[rel]["sha256"]:
                plan.changes.append(Change(rel, current, None))
                plan.notes.append(f"{rel}: installed by an earlier version and no longer a recipe config; removing it")
            else:
                plan.notes.append(f"{rel}: installed by an earlier version, edited since; left in place")

    manifest_bytes = render_manifest(version, sha256_bytes(original.encode("utf-8")),
                                     sha256_bytes(new_bytes), recorded)
    _add_manifest_change(plan, root, manifest_bytes)
    return plan


@_reads_files
def plan_uninstall(path, keep_modified=False):
    """The plan that removes G2D from the checkout at ``path``.

    keep_modified: leave installed configs that were edited since install (default: refuse, so
    that uninstall is all or nothing and never deletes someone's edits).
    """
    root = open_checkout(path)
    manifest = read_manifest(root)
    plan = Plan("uninstall", root)

    old_bytes, text = _read_get_model_file(root)
    if blockmod.find_blocks(text):
        new_bytes = blockmod.strip_blocks(text).encode("utf-8")
        plan.changes.append(Change(GET_MODEL_FILE, old_bytes, new_bytes))
        if manifest and sha256_bytes(new_bytes) != manifest["get_model"]["original_sha256"]:
            plan.notes.append(f"{GET_MODEL_FILE} was edited after install: removing only the G2D block, "
                              "your other edits stay")
    if manifest is None:
        if plan.changes:
            plan.notes.append(f"no {MANIFEST_NAME} (the block came from g2d.patch or a copy): removing the block "
                              "only; configs added by the patch stay (`git apply -R g2d.patch` reverts a patch)")
        return plan

    modified = []
    for rel, entry in sorted(manifest["configs"].items()):
        dest = root / rel
        if not dest.exists() and not dest.is_symlink():
            plan.notes.append(f"{rel}: already gone")
            continue
        current = dest.read_bytes() if is_regular_file(dest) else None
        if current is not None and sha256_bytes(current) == entry["sha256"]:
            plan.changes.append(Change(rel, current, None))
        elif keep_modified:
            plan.notes.append(f"{rel}: edited since install; left in place (--keep-modified)")
        else:
            modified.append(rel)
    if modified:
        raise IntegrationError(
            f"{', '.join(modified)} in {root} changed since install; nothing was changed: move your edited "
            "copies out of configs/ (or pass --keep-modified to leave them in place) and uninstall again")
    _add_manifest_change(plan, root, None)
    return plan


def _add_manifest_change(plan, root, new_bytes):
    path = root / MANIFEST_NAME
    old = path.read_bytes() if path.is_file() else None
    if old != new_bytes:
        plan.changes.append(Change(MANIFEST_NAME, old, new_bytes))


def install(path, configs_dir=None, dry_run=False, version=__version__):
    """Plan and (unless ``dry_run``) apply an install; returns the Plan."""
    plan = plan_install(path, configs_dir, version)
    return plan if dry_run else plan.apply()


def uninstall(path, keep_modified=False, dry_run=False):
    """Plan and (unless ``dry_run``) apply an uninstall; returns the Plan."""
    plan = plan_uninstall(path, keep_modified)
    return plan if dry_run else plan.apply()


@_reads_files
def status(path):
    """What is installed in the checkout at ``path``:

    dict(root, block_versions [versions of the blocks in get_model], manifest_version (or None),
         package_version, up_to_date (bool), get_model_edited (bool or None),
         configs [(rel, "unchanged" | "edited" | "missing")])
    """
    root = open_checkout(path)
    manifest = read_manifest(root)
    _, text = _read_get_model_file(root)
    versions = [b.version for b in blockmod.find_blocks(text)]
    configs, edited = [], None
    if manifest:
        for rel, entry in sorted(manifest["configs"].items()):
            dest = root / rel
            if not is_regular_file(dest):
                state = "missing"
            elif sha256_bytes(dest.read_bytes()) == entry["sha256"]:
                state = "unchanged"
            else:
                state = "edited"
            configs.append((rel, state))
        original = blockmod.strip_blocks(text).encode("utf-8")
        edited = sha256_bytes(original) != manifest["get_model"]["original_sha256"]
    return {
        "root": root,
        "block_versions": versions,
        "manifest_version": manifest["version"] if manifest else None,
        "package_version": __version__,
        "up_to_date": versions == [__version__],
        "get_model_edited": edited,
        "configs": configs,
    }

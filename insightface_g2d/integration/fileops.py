"""File changes as data: check them, show them as a unified diff, apply them all-or-nothing.

A ``Change`` says what one file under a root becomes: ``old`` bytes (None: the file does not
exist) -> ``new`` bytes (None: delete it). Installing and uninstalling are lists of changes, so a
dry run (``unified_diff``) and the real run (``apply_changes``) are the same plan.
"""
import difflib
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..fileio import atomic_open
from .block import split_lines
from .errors import IntegrationError


def sha256_bytes(data):
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Change:
    """One file under the root: ``rel`` (POSIX relative path) goes from ``old`` to ``new``."""

    rel: str
    old: Optional[bytes]
    new: Optional[bytes]

    @property
    def kind(self):
        if self.old is None:
            return "add"
        if self.new is None:
            return "delete"
        return "modify"


def check_writable(root, changes):
    """Raise IntegrationError listing every change that cannot be made (nothing is written).

    A file is replaced through a temporary file in its folder, and created or deleted there, so
    every change needs a writable folder; an existing target must be a regular file (not a folder
    or a symbolic link) that is writable itself.
    """
    root = Path(root)
    problems = []
    for change in changes:
        path = root / change.rel
        parent = path.parent
        if not parent.is_dir():
            problems.append(f"{change.rel}: folder {parent} does not exist")
            continue
        if not os.access(parent, os.W_OK | os.X_OK):
            problems.append(f"{change.rel}: folder {parent} is not writable")
        if change.old is not None or os.path.lexists(path):
            if os.path.islink(path) or not path.is_file():
                what = "a symbolic link" if os.path.islink(path) else "not a regular file"
                problems.append(f"{change.rel}: {path} is {what}")
            elif not os.access(path, os.W_OK):
                problems.append(f"{change.rel}: {path} is read-only")
    if problems:
        raise IntegrationError(
            f"cannot change the arcface_torch checkout at {root}: " + "; ".join(problems)
            + ". Nothing was changed; make these writable (e.g. chmod -R u+w) or work on a copy")


def check_unchanged(root, changes):
    """Raise IntegrationError if a file no longer holds the ``old`` bytes the plan was made from."""
    for change in changes:
        path = Path(root) / change.rel
        current = path.read_bytes() if path.is_file() else None
        if current != change.old:
            raise IntegrationError(f"{path} changed while the command ran; nothing was changed, run it again")


def apply_changes(root, changes, write=None):
    """Make every change or none: each file is written atomically, and on any failure the files
    already changed are put back as they were.

    write: the function writing one file (path, bytes); tests pass a failing one.
    Raises IntegrationError saying what failed and whether the roll-back worked.
    """
    write = write or atomic_write
    root = Path(root)
    check_writable(root, changes)
    check_unchanged(root, changes)
    done = []
    try:
        for change in changes:
            path = root / change.rel
            if change.new is None:
                path.unlink()
            else:
                write(path, change.new)
            done.append(change)
    except OSError as err:
        failed = _roll_back(root, done, write)
        rel = changes[len(done)].rel
        if failed:
            raise IntegrationError(
                f"writing {root / rel} failed ({err}); rolling back also failed for "
                f"{', '.join(failed)}: restore those files from git or from a fresh arcface_torch") from None
        raise IntegrationError(
            f"writing {root / rel} failed ({err}); every change was rolled back, the checkout is as before") from None


def _roll_back(root, done, write):
    """Undo ``done`` changes in reverse order; returns the paths that could not be restored."""
    failed = []
    for change in reversed(done):
        path = root / change.rel
        try:
            if change.old is None:
                path.unlink()
            else:
                write(path, change.old)
        except OSError:
            failed.append(str(path))
    return failed


def atomic_write(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    An existing file's permission bits are kept. Readers see the old or the new file, never half.
    """
    with atomic_open(path, suffix=".g2d-tmp") as f:
        f.write(data)


def unified_diff(changes, context=3):
    """The changes as one unified diff text (``a/`` and ``b/`` prefixes, /dev/null for added or
    deleted files), as ``git diff`` would show them."""
    out = []
    for change in changes:
        old = _text_lines(change.old)
        new = _text_lines(change.new)
        a = "/dev/null" if change.old is None else f"a/{change.rel}"
        b = "/dev/null" if change.new is None else f"b/{change.rel}"
        if not old and not new:  # an empty file added or deleted: difflib prints nothing
            out.append(f"--- {a}\n+++ {b}\n")
        for line in difflib.unified_diff(old, new, a, b, n=context):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _text_lines(data):
    if data is None:
        return []
    return split_lines(data.decode("utf-8", errors="replace"))


def is_regular_file(path):
    """True for a regular file that is not a symbolic link."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False

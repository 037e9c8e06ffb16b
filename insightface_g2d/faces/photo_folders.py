"""Folders of photos, one sub-folder per person (`src/<identity>/<photo>`): listing them, and the
identity lists that select people.

Identity lists (include / exclude): one identity per line, either a plain name or `name<TAB>count`
(LFW's peopleDevTrain.txt, people.txt, lfw-names.txt); lines holding only integers (the count
headers of those files) and lines starting with '#' are skipped.
"""
import errno
import os
from pathlib import Path

from ..data.image_io import IMAGE_EXTENSIONS
from ..errors import DataError

def read_identity_list(path):
    """Identity names of an include/exclude list (see module doc), in file order, without duplicates."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"identity list {path} not found; give a file with one identity per line "
                        "(a name, or name<TAB>count as LFW's peopleDevTrain.txt)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read identity list {path}: {err}") from None
    names = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else [line]
        if all(f.strip().lstrip("-").isdigit() for f in line.split()):
            continue  # a count header ("4038", "10", "10 300")
        names.append(fields[0].strip())
    if not names:
        raise DataError(f"identity list {path} names no identity")
    return list(dict.fromkeys(names))


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _entry_problem(entry, want_dir):
    """None when scandir `entry` is a folder (want_dir) or a file to list; the string 'skip' when it
    is not one; a reason when it cannot be examined (a symbolic link loop, no permission, ...)."""
    try:
        ok = entry.is_dir() if want_dir else entry.is_file()
    except OSError as err:
        return _os_reason(err)
    return None if ok else "skip"


def _os_reason(err):
    if err.errno == errno.ELOOP:
        return "a symbolic link loop (ELOOP); skipped"
    return f"cannot be read ({err.strerror or err}); skipped"


def list_photos(src, include=None, exclude=None, skipped=None):
    """[(identity, relative path '/'-separated)] of src/<identity>/<image>, sorted.

    include / exclude: iterables of identity names (or None). Every included name must exist.
    Entries that cannot be examined (a symbolic link loop, a folder without permission) are left
    out, and appended as (relative path, reason) to `skipped` when it is a list.
    """
    src = Path(src)
    skipped = [] if skipped is None else skipped
    if not src.is_dir():
        raise DataError(f"photo folder {src} not found; expected src/<identity>/<photo>.jpg")
    identities = []
    for e in os.scandir(src):
        if e.name.startswith("."):
            continue
        problem = _entry_problem(e, want_dir=True)
        if problem is None:
            identities.append(e.name)
        elif problem != "skip":
            skipped.append((e.name, problem))
    identities.sort()
    if not identities:
        raise DataError(f"{src} has no identity sub-folders; expected src/<identity>/<photo>.jpg")
    if include is not None:
        include = list(include)
        present = set(identities)
        missing = [n for n in include if n not in present]
        if missing:
            raise DataError(f"{len(missing)} of {len(include)} identities of the include list are not folders of "
                            f"{src} (first: {', '.join(missing[:3])}); check --src and the list")
        wanted = set(include)
        identities = [n for n in identities if n in wanted]
    if exclude is not None:
        drop = set(exclude)
        identities = [n for n in identities if n not in drop]
    out = []
    for name in identities:
        try:
            entries = list(os.scandir(src / name))
        except OSError as err:
            skipped.append((name, _os_reason(err)))
            continue
        files = []
        for e in entries:
            if not _is_image(e.name):
                continue
            problem = _entry_problem(e, want_dir=False)
            if problem is None:
                files.append(e.name)
            elif problem != "skip":
                skipped.append((f"{name}/{e.name}", problem))
        out.extend((name, f"{name}/{f}") for f in sorted(files))
    if not out:
        raise DataError(f"no photos ({', '.join(IMAGE_EXTENSIONS)}) in the selected identity folders of {src}")
    return out

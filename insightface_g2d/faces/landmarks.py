"""Finding an image's five landmarks in a landmarks TSV (``path x1 y1 ... x5 y5``) by its path.

The paths in a TSV are relative to some folder that is not always the one a tool is given (LFW's
landmarks5.tsv lists ``Name/Name_0001.jpg`` under ``lfw-deepfunneled/``; an aligned copy may use
``.png``). ``LandmarkIndex.find(path, root)`` tries, in order:

    1. the path relative to ``root``, as written in the file
    2. the same relative path with another image extension (.jpg, .png, .jpeg, .bmp, ...)
    3. the longest TSV path that ends the image's path ('/'-separated components)
    4. the first TSV path with the same last two components ``<identity>/<file>``
"""
import os
from pathlib import Path

from ..errors import DataError
from ..data.align import read_landmarks_tsv
from ..data.image_io import IMAGE_EXTENSIONS

# The order extensions are tried in (step 2): the common ones first.
_EXTENSION_ORDER = (".jpg", ".png", ".jpeg", ".bmp") + tuple(
    e for e in IMAGE_EXTENSIONS if e not in (".jpg", ".png", ".jpeg", ".bmp"))


class LandmarkIndex:
    """Landmarks looked up by image path. ``source``: a landmarks TSV path, or a dict
    {relative path: [5, 2]} already read (``where`` then names it in messages)."""

    def __init__(self, source, where="the landmarks file"):
        if isinstance(source, dict):
            self.rows, self.where = source, where
        else:
            self.rows, self.where = read_landmarks_tsv(source), str(source)
        self.by_name = {}
        self.by_tail = {}
        for key in self.rows:
            self.by_name.setdefault(key.rsplit("/", 1)[-1], []).append(key)
            self.by_tail.setdefault("/".join(key.split("/")[-2:]), key)

    def key(self, path, root=None):
        """The TSV path that holds the landmarks of image ``path`` (see the module doc), or None."""
        path = Path(path)
        rel = path.relative_to(root).as_posix() if root is not None else path.as_posix()
        if rel in self.rows:
            return rel
        stem = os.path.splitext(rel)[0]
        for ext in _EXTENSION_ORDER:
            if stem + ext in self.rows:
                return stem + ext
        parts = path.as_posix().split("/")
        best = None
        for key in self.by_name.get(path.name, ()):
            n = key.count("/") + 1
            if parts[-n:] == key.split("/") and (best is None or n > best.count("/") + 1):
                best = key
        if best is not None:
            return best
        return self.by_tail.get("/".join(rel.split("/")[-2:]))

    def find(self, path, root=None):
        """Landmarks float32 [5, 2] of image ``path`` (relative to ``root`` when given), or None."""
        key = self.key(path, root)
        return None if key is None else self.rows[key]

    def require(self, path, root=None):
        """``find``, or a DataError that says how to fix the file."""
        lmk = self.find(path, root)
        if lmk is None:
            raise DataError(f"no landmarks for image {path} in {self.where}: add a row for it "
                            "(path relative to the input folder) or leave the image out")
        return lmk

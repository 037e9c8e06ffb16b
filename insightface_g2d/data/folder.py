"""ImageFolderFaces: aligned faces stored as root/<identity>/<image>, one folder per person."""
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from insightface_g2d.data.image_io import IMAGE_EXTENSIONS, fit_square, read_image_file
from insightface_g2d.errors import DataError

log = logging.getLogger(__name__)


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def scan_image_folder(root):
    """[(relative path, label)], identity names, file sizes for root/<identity>/<image> (sorted, deterministic)."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder {root} does not exist; expected root/<identity>/<image>.jpg")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected an image folder root/<identity>/<image>.jpg")
    identities = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not identities:
        loose = [e.name for e in os.scandir(root) if e.is_file() and _is_image(e.name)]
        hint = f" (found {len(loose)} images directly in it: move them into one folder per identity)" if loose else ""
        raise DataError(f"image folder {root} has no identity sub-folders{hint}; "
                        f"expected root/<identity>/<image>.jpg")
    items, sizes = [], []
    for label, name in enumerate(identities):
        files = [e for e in os.scandir(root / name) if e.is_file() and _is_image(e.name)]
        if not files:
            raise DataError(f"identity folder {root / name} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                            f"remove it or add images: every sub-folder of {root} is one identity")
        for e in sorted(files, key=lambda e: e.name):
            items.append((f"{name}/{e.name}", label))
            sizes.append(e.stat().st_size)
    return items, identities, sizes


class ImageFolderFaces(Dataset):
    """Aligned faces in root/<identity>/<image>; labels number the identity folders in sorted order.

    __getitem__(i) -> (uint8 [size, size, 3] RGB, int label). Images that are not size x size are
    resized, with one warning (faces are expected to be aligned already: `g2d-data align`).
    Only files directly inside each identity folder with an image extension are used.

    skip_bad: False (default) raises DataError on an unreadable image; True replaces it with the
    next readable item (i+1, i+2, ... wrapping around) and counts it in ``bad_count``.
    """

    def __init__(self, root, size=112, skip_bad=False):
        self.root = Path(root)
        self.size = int(size)
        self.skip_bad = bool(skip_bad)
        self.bad_count = 0
        self._bad = set()
        self._warned_resize = False
        self.items, self.classes, self._sizes = scan_image_folder(self.root)

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def labels(self):
        """int64 [len(self)]: every item's label."""
        return np.array([label for _, label in self.items], dtype=np.int64)

    def __len__(self):
        return len(self.items)

    def _load(self, i):
        rel, label = self.items[i]
        img = read_image_file(self.root / rel)
        if img.shape[:2] != (self.size, self.size) and not self._warned_resize:
            self._warned_resize = True
            log.warning("%s is %dx%d, not an aligned %dx%d face: resizing (warned once). If these are photos "
                        "rather than aligned crops, align them first: g2d-data align --src %s "
                        "--out ALIGNED", self.root / rel, img.shape[1], img.shape[0], self.size, self.size, self.root)
        return fit_square(img, self.size), label

    def __getitem__(self, i):
        n = len(self.items)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i %= n
        if not self.skip_bad:
            return self._load(i)
        for step in range(n):
            j = (i + step) % n
            if j in self._bad:
                continue
            try:
                return self._load(j)
            except DataError as err:
                self._bad.add(j)
                self.bad_count += 1
                if self.bad_count & (self.bad_count - 1) == 0:
                    log.warning("%s: skipped %d unreadable image(s) so far (skip_bad); latest: %s",
                                self.root, self.bad_count, err)
        raise DataError(f"{self.root}: no image can be read ({n} tried); this is not a usable dataset")

    def fingerprint(self):
        h = hashlib.sha1(f"folder:size={self.size}\n".encode())
        for (rel, label), nbytes in zip(self.items, self._sizes):
            h.update(f"{rel}\t{label}\t{nbytes}\n".encode())
        return h.hexdigest()[:16]

    def __repr__(self):
        return f"ImageFolderFaces({str(self.root)!r}, {len(self)} images, {self.num_classes} identities)"

"""ImageFolderFaces: aligned faces stored as root/<identity>/<image>, one folder per person."""
import hashlib
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from insightface_g2d.data.image_io import IMAGE_EXTENSIONS, fit_square, read_image_file
from insightface_g2d.errors import DataError


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


def read_face(path, size=112):
    """Read an image file as uint8 [size, size, 3] RGB (resized when needed).

    Raises DataError naming the file when it is missing, cannot be decoded, or has a header
    claiming a huge size (refused before decoding, see image_io).
    """
    return fit_square(read_image_file(path), size)


class ImageFolderFaces(Dataset):
    """Aligned faces in root/<identity>/<image>; labels number the identity folders in sorted order.

    __getitem__(i) -> (uint8 [size, size, 3] RGB, int label). Images that are not size x size are
    resized (faces are expected to be aligned already, e.g. with insightface_g2d.data.align).
    Only files directly inside each identity folder with an image extension are used.
    """

    def __init__(self, root, size=112):
        self.root = Path(root)
        self.size = int(size)
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

    def __getitem__(self, i):
        rel, label = self.items[i]
        return read_face(self.root / rel, self.size), label

    def fingerprint(self):
        h = hashlib.sha1(f"folder:size={self.size}\n".encode())
        for (rel, label), nbytes in zip(self.items, self._sizes):
            h.update(f"{rel}\t{label}\t{nbytes}\n".encode())
        return h.hexdigest()[:16]

    def __repr__(self):
        return f"ImageFolderFaces({str(self.root)!r}, {len(self)} images, {self.num_classes} identities)"

"""What a face finder says about one photo, and the interface every finder has.

A finder (``finders.FACE_FINDERS``: the kit's masked-face front end, dlib's HOG + 68 points,
an SCRFD .onnx) is called on a uint8 RGB photo and returns a ``Finding``: the five landmarks of
the picked face, or None and the reason, plus how confident it is, how many faces it saw, which
one it picked and which of its detectors found it. ``finder(img)`` keeps the older pair form
``(landmarks or None, source or reason)``.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

# A photo whose smaller side is under this cannot hold a face any finder here detects
# (dlib's HOG window is 80 px, found down to about 40 px in a photo upsampled once).
MIN_PHOTO_SIDE = 32


@dataclass
class Finding:
    """landmarks float32 [5, 2] (None: no face); score: the picked face's confidence (finder's own scale);
    faces: faces seen; box: (x0, y0, x1, y1) of the picked face; source: which detector found it;
    reason: why no face was returned (empty when one was); outcome: "found", "no face" or "too small";
    refit: the landmarks are dlib's 68-point refit of the face found (the g2d front end's last step)."""

    landmarks: object = None
    score: float = float("nan")
    faces: int = 0
    box: tuple = None
    source: str = ""
    reason: str = ""
    outcome: str = "no face"
    refit: bool = False


def check_photo(img):
    """The photo as a contiguous uint8 [H, W, 3] array, or DataError."""
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"expected a uint8 [H, W, 3] RGB image, got {img.dtype} {img.shape}")
    return img


def too_small(img):
    """A Finding for a photo too small to hold a face, or None when it is large enough."""
    h, w = img.shape[:2]
    if min(h, w) >= MIN_PHOTO_SIDE:
        return None
    return Finding(reason=f"photo is {w}x{h} px, too small to hold a face (the finders need at least "
                   f"{MIN_PHOTO_SIDE} px a side; a face about 40 px wide)", outcome="too small")


class FaceFinder:
    """Base of the finders: subclasses implement ``_find(img) -> Finding`` on a checked, large-enough photo."""

    name = "finder"

    def find(self, img):
        img = check_photo(img)
        small = too_small(img)
        return small if small is not None else self._find(img)

    def __call__(self, img):
        """(landmarks float32 [5, 2] or None, source or reason): the older two-value form."""
        f = self.find(img)
        return (f.landmarks, f.source) if f.landmarks is not None else (None, f.reason)

    def _find(self, img):
        raise NotImplementedError

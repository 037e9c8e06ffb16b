"""Photos as the recognizer takes them: a path, a numpy array or a PIL image -> uint8 RGB [H, W, 3].

Arrays are RGB unless bgr=True says they are BGR (OpenCV's cv2.imread order); grey [H, W] arrays and
RGBA / BGRA [H, W, 4] ones are converted. Paths are read with the kit's safe reader (headers checked
before decoding; a missing or undecodable file is a DataError naming it).
"""
import os

import numpy as np

from ..errors import DataError


def is_single_photo(photo):
    """True for one photo (path, PIL image, [H, W] or [H, W, C] array); False for a batch (list,
    tuple or a [N, H, W, 3] array)."""
    if isinstance(photo, (list, tuple)):
        return False
    if isinstance(photo, np.ndarray) and photo.ndim == 4:
        return False
    return True


def photo_name(photo, index=None):
    """How messages name a photo: its path, or "photo" / "photo 3" for in-memory images."""
    if isinstance(photo, (str, os.PathLike)):
        return os.fspath(photo)
    return "photo" if index is None else f"photo {index}"


def load_photo(photo, bgr=False):
    """uint8 RGB [H, W, 3] of `photo` (see the module doc); DataError for anything else."""
    from ..data.image_io import read_photo

    if isinstance(photo, (str, os.PathLike)):
        return read_photo(photo, what="photo")
    if type(photo).__module__.startswith("PIL."):
        return np.asarray(photo.convert("RGB"), dtype=np.uint8).copy()
    if not isinstance(photo, np.ndarray):
        raise DataError(f"a photo must be a file path, a numpy array or a PIL image, got {type(photo).__name__}")
    return _array_to_rgb(photo, bgr)


def _array_to_rgb(arr, bgr):
    if arr.dtype != np.uint8:
        raise DataError(f"a photo array must be uint8 (0..255), got {arr.dtype}; convert it with "
                        "(x * 255).clip(0, 255).astype(np.uint8) for 0..1 floats")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DataError(f"a photo array must be [H, W, 3] (or [H, W] grey, [H, W, 4] with alpha), got {arr.shape}")
    arr = arr[:, :, :3]
    if bgr:
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)

"""Five-point face alignment onto the ArcFace template.

Landmark order everywhere: left eye, right eye, nose tip, left mouth corner, right mouth corner
("left" = smaller x in the image), pixel coordinates (x, y) with pixel centres on integers
(OpenCV's convention).
"""
import math
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError

# Where arcface_torch's 112x112 crops put the five landmarks.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963],
     [73.5318, 51.5014],
     [56.0252, 71.7366],
     [41.5493, 92.3655],
     [70.7299, 92.2041]],
    dtype=np.float32,
)

_LANDMARK_COLUMNS = ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4", "x5", "y5")
# No photo is a million pixels wide: a coordinate beyond this is a broken row, refused when read.
MAX_COORDINATE = 1e6


def template(size=112):
    """ARCFACE_TEMPLATE scaled to a ``size`` x ``size`` crop: float32 [5, 2]."""
    return ARCFACE_TEMPLATE * np.float32(size / 112.0)


def _as_points(points, name):
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
        raise DataError(f"{name}: expected an array of N >= 2 points [N, 2], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: landmarks contain NaN or infinite values: {arr.tolist()}")
    return arr


def estimate_similarity(src5, dst5):
    """Least-squares similarity transform (rotation, uniform scale, translation) taking src to dst.

    Umeyama (1991): the closed-form minimiser of sum_i |s R src_i + t - dst_i|^2 with R a proper
    rotation (no reflection).

    src5, dst5: [N, 2] point arrays (N >= 2, usually the 5 landmarks). Returns float64 [2, 3]
    ``M`` such that ``dst ~= src @ M[:, :2].T + M[:, 2]`` -- the matrix cv2.warpAffine takes.
    Raises DataError when the points are malformed or all coincide.
    """
    src = _as_points(src5, "source landmarks")
    dst = _as_points(dst5, "target landmarks")
    if src.shape != dst.shape:
        raise DataError(f"landmark arrays differ in shape: {src.shape} vs {dst.shape}")
    n = src.shape[0]
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc ** 2).sum() / n
    if var_s < 1e-12:
        raise DataError(f"source landmarks all coincide ({src[0].tolist()}): cannot align this face")
    cov = dc.T @ sc / n
    u, sing, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # best fit would be a reflection: flip the weakest axis
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sing * d).sum() / var_s)
    trans = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, trans[:, None]], axis=1)


def transform_points(points, matrix):
    """Apply a 2x3 affine ``matrix`` to points [N, 2] -> float64 [N, 2]."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def alignment_matrix(landmarks5, size=112):
    """2x3 matrix mapping image pixels to the ``size`` x ``size`` ArcFace crop."""
    return estimate_similarity(landmarks5, template(size))


def check_landmarks_in_image(landmarks, shape, where="landmarks"):
    """DataError naming `where` when a landmark is NaN/inf or lies more than the image's own width
    (height) beyond its left or right (top or bottom) border: such a face would be warped into a
    flat or black crop. A face cut by the border (landmarks a little outside) passes."""
    lmk = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    h, w = int(shape[0]), int(shape[1])
    if not np.all(np.isfinite(lmk)):
        raise DataError(f"{where}: landmarks contain NaN or infinite values; fix or remove them")
    outside = (lmk[:, 0] < -w) | (lmk[:, 0] >= 2 * w) | (lmk[:, 1] < -h) | (lmk[:, 1] >= 2 * h)
    if outside.any():
        k = int(np.argmax(outside))
        raise DataError(f"{where}: landmark {k + 1} at ({lmk[k, 0]:.6g}, {lmk[k, 1]:.6g}) lies far outside the "
                        f"{w}x{h} image (more than the image's size beyond its border); the landmarks are wrong: "
                        "fix or remove them")


def align_face(img, landmarks5, size=112, where="landmarks"):
    """Warp a face onto the ArcFace template.

    img: uint8 [H, W, 3] (any size); landmarks5: [5, 2] in img's pixel coordinates (refused when
    far outside the image: `check_landmarks_in_image`, its message naming `where`).
    Returns uint8 [size, size, 3]; pixels from outside img are black (as insightface's norm_crop).
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"align_face expects a uint8 H x W x 3 image, got {img.dtype} {img.shape}")
    lmk = np.asarray(landmarks5, dtype=np.float64)
    if lmk.shape != (5, 2):
        raise DataError(f"align_face expects 5 landmarks [5, 2], got shape {lmk.shape}")
    check_landmarks_in_image(lmk, img.shape, where)
    m = alignment_matrix(lmk, size)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def warp_crops(crops, matrix, size):
    """uint8 [N, h, w, 3] aligned crops -> uint8 [N, size, size, 3] through one affine map [2, 3]
    (bilinear, edge pixels replicated): how a network that makes its own input from the 112 crop
    (dlib's 150 x 150 chip) gets it, in PyTorch and in a bundle alike."""
    m = np.asarray(matrix, np.float64)
    return np.stack([cv2.warpAffine(np.ascontiguousarray(c), m, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) for c in crops])


def read_landmarks_tsv(path):
    """Read a landmarks file: tab-separated, header ``path x1 y1 ... x5 y5 [more columns]``.

    Returns {relative image path: float32 [5, 2]} (paths as written, '/'-separated).
    Raises DataError naming the file and line for a missing file, a bad header, a short row,
    a non-numeric or non-finite coordinate, one beyond +-MAX_COORDINATE, or a duplicated path.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"landmarks file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read landmarks file {path}: {err}") from err
    if not lines:
        raise DataError(f"{path}: empty landmarks file; expected a header 'path x1 y1 ... x5 y5'")
    header = lines[0].rstrip("\r").split("\t")
    missing = [c for c in ("path",) + _LANDMARK_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)}; expected "
                        "tab-separated 'path x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 [source]'")
    i_path = header.index("path")
    i_xy = [header.index(c) for c in _LANDMARK_COLUMNS]
    need = max([i_path] + i_xy) + 1
    out = {}
    for lineno, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < need:
            raise DataError(f"{path}:{lineno}: expected at least {need} tab-separated fields, "
                            f"got {len(fields)}: {line[:80]!r}")
        key = fields[i_path].strip()
        if not key:
            raise DataError(f"{path}:{lineno}: empty image path")
        try:
            xy = [float(fields[i]) for i in i_xy]
        except ValueError:
            raise DataError(f"{path}:{lineno}: non-numeric landmark coordinate in {line[:80]!r}") from None
        if not all(math.isfinite(v) for v in xy):
            raise DataError(f"{path}:{lineno}: non-finite landmark coordinate in {line[:80]!r}")
        if max(abs(v) for v in xy) > MAX_COORDINATE:
            raise DataError(f"{path}:{lineno}: landmark coordinate {max(xy, key=abs):.6g} is not a pixel position "
                            f"(beyond +-{MAX_COORDINATE:.0e}) in {line[:80]!r}; fix or remove this row")
        if key in out:
            raise DataError(f"{path}:{lineno}: image {key!r} listed twice")
        out[key] = np.asarray(xy, dtype=np.float32).reshape(5, 2)
    return out

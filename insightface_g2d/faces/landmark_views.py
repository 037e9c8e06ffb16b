"""The views the landmark network sees, and the geometry between photo, 112 frame and view (numpy
and OpenCV only: the front end runs it with the PyTorch network or with its ONNX export).

The view is the ArcFace 112 x 112 frame with a margin of ``MARGIN`` on every side, resampled to
``INPUT`` x ``INPUT`` pixels: a similarity ``M`` taking photo pixels to the 112 frame (from a
detector box, or from landmarks of an earlier pass) gives the view ``V = A @ M`` where ``A`` takes
the 112 frame to view pixels.
"""
import cv2
import numpy as np

from ..data.align import ARCFACE_TEMPLATE, estimate_similarity

INPUT = 96          # view side in pixels
MARGIN = 0.2        # view margin around the 112 frame, as a share of the frame side


def frame_to_view():
    """3x3 matrix taking 112-frame coordinates to view pixels."""
    s = INPUT / (112.0 * (1.0 + 2.0 * MARGIN))
    t = s * 112.0 * MARGIN
    return np.array([[s, 0.0, t], [0.0, s, t], [0.0, 0.0, 1.0]])


def template_in_view():
    """The ArcFace template in view pixels: float32 [5, 2]."""
    a = frame_to_view()
    return (ARCFACE_TEMPLATE.astype(np.float64) @ a[:2, :2].T + a[:2, 2]).astype(np.float32)


def _h(m):
    return np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])


def view_matrices(frames):
    """[N, 2, 3] photo -> 112-frame similarities -> [N, 2, 3] photo -> view pixels."""
    a = frame_to_view()
    return np.stack([(a @ _h(f))[:2] for f in np.asarray(frames, np.float64).reshape(-1, 2, 3)])


def crop_views(img, frames, border=cv2.BORDER_REPLICATE):
    """The views of one photo: (uint8 [N, INPUT, INPUT, 3], photo -> view matrices [N, 2, 3]).

    A view that shrinks the photo more than 2x is cut from a copy shrunk first (INTER_AREA, integer
    factor), so large faces are averaged rather than aliased."""
    mats = view_matrices(frames)
    views = np.zeros((len(mats), INPUT, INPUT, 3), np.uint8)
    shrunk = {1: img}
    for i, m in enumerate(mats):
        f = max(1, int(_shrink(m) / 1.5))
        if f not in shrunk:
            shrunk[f] = cv2.resize(img, (max(1, round(img.shape[1] / f)), max(1, round(img.shape[0] / f))),
                                   interpolation=cv2.INTER_AREA)
        small = shrunk[f]
        sx, sy = img.shape[1] / small.shape[1], img.shape[0] / small.shape[0]
        # small pixel (u, v) is photo pixel ((u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5)
        to_photo = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        views[i] = cv2.warpAffine(small, (_h(m) @ to_photo)[:2], (INPUT, INPUT), flags=cv2.INTER_LINEAR,
                                  borderMode=border)
    return views, mats


def _shrink(m):
    """How many photo pixels one view pixel spans (the similarity's inverse scale)."""
    return 1.0 / max(float(np.sqrt(abs(np.linalg.det(np.asarray(m)[:2, :2])))), 1e-9)


def view_to_photo(points, mats):
    """Points [N, K, 2] in view pixels -> photo pixels, inverting each [2, 3] matrix of ``mats``."""
    out = []
    for p, m in zip(np.asarray(points, np.float64), np.asarray(mats, np.float64)):
        inv = np.linalg.inv(_h(m))
        out.append(p @ inv[:2, :2].T + inv[:2, 2])
    return np.asarray(out, np.float64).reshape(np.shape(points))


def frames_from_landmarks(landmarks):
    """[N, 5, 2] photo landmarks -> [N, 2, 3] photo -> 112-frame similarities (as align_face's)."""
    return np.stack([estimate_similarity(p, ARCFACE_TEMPLATE) for p in np.asarray(landmarks, np.float64)]) \
        if len(landmarks) else np.zeros((0, 2, 3))


def frames_from_boxes(boxes, calibration):
    """[N, 4] boxes (x0, y0, x1, y1) -> [N, 2, 3] upright photo -> 112-frame similarities.

    calibration (dx, dy, size): the 112 frame's centre lies at box centre + (dx, dy) x box width,
    and the frame spans size x box width photo pixels (measured per detector on clean faces).
    """
    dx, dy, size = (float(v) for v in calibration)
    out = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        w = max(x1 - x0, 1.0)
        cx, cy = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * w
        s = 112.0 / (size * w)
        out.append([[s, 0.0, 56.0 - s * cx], [0.0, s, 56.0 - s * cy]])
    return np.asarray(out, np.float64).reshape(-1, 2, 3)

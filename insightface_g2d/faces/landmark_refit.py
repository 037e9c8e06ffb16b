"""The 68-point refit of the front end: dlib's 68-point model fitted to a face the landmark network
found, kept where the two agree.

Recognizers are trained on faces aligned by one landmark convention, and LFW's true landmarks (and
the chips dlib's recognizer was trained on) come from dlib's HOG box + 68-point model. On a clear,
unmasked face that fit is sharper than the kit's landmark network (the network's points are 0.05
of the eye distance from LFW's), and on clean photos the end-to-end cost of the front end is the
network's scatter. A face is clear when dlib's own frontal HOG detector drew a box on it (score 0
or more, among the front end's proposals; the box overlaps the one its calibration, front_end.json,
puts around the network's points by ``MIN_OVERLAP``) and the 68-point model fitted in that box (as
LFW's landmarks were made) agrees with the network: no point more than ``max_disagreement`` x the
eye distance from the network's. Then the refit's points are kept; a masked face, which that
detector misses half the time and where the 68-point model puts the nose and mouth on the mask's
folds, mostly keeps the network's points, and a refit that is kept moves them by less than that.

dlib's 68-point model is trained on iBUG 300-W (no commercial use): ``refit=False`` (front end) or
``--no-refit`` leaves it out.
"""
import numpy as np

from .dlib_landmarks import _import_dlib, five_from_68, model_path
from .landmark_views import frames_from_landmarks

MAX_DISAGREEMENT = 0.15       # x the eye distance, any of the five points
MIN_OVERLAP = 0.5             # intersection over union of a HOG box and the face's box, to fit in the HOG box
HOG_CALIBRATION = (0.0353, -0.1505, 1.2376)  # dlib's HOG boxes -> 112 frame (front_end.json's filter 0)


def box_from_landmarks(landmarks, calibration=HOG_CALIBRATION):
    """(x0, y0, x1, y1): the upright box a detector with ``calibration`` (frames_from_boxes') would draw
    around a face whose five points are ``landmarks`` [5, 2]."""
    dx, dy, size = (float(v) for v in calibration)
    m = frames_from_landmarks(np.asarray(landmarks, np.float64)[None])[0]
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))
    cx, cy = inv[:2, :2] @ np.array([56.0, 56.0]) + inv[:2, 2]
    w = 112.0 / float(np.sqrt(abs(np.linalg.det(m[:, :2])))) / size
    cx, cy = cx - dx * w, cy - dy * w
    return cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2


def overlap(a, b):
    """Intersection over union of boxes (x0, y0, x1, y1)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / max(union, 1e-12)


def disagreement(a, b):
    """The largest distance between corresponding points of [5, 2] sets, over the eye distance of ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b, axis=1).max() / max(np.linalg.norm(b[1] - b[0]), 1e-6))


class Refit68:
    """``refit(photo, landmarks, hog_boxes)`` -> (landmarks [5, 2], True) with the 68-point model's five
    points when they agree with ``landmarks``, else (landmarks, False). hog_boxes [K, 4]: dlib's HOG
    detections in the photo (the refit fits in the one on this face, if any)."""

    def __init__(self, calibration=HOG_CALIBRATION, max_disagreement=MAX_DISAGREEMENT):
        self.dlib = _import_dlib()
        self.predictor = self.dlib.shape_predictor(model_path("shape_predictor_68_face_landmarks.dat"))
        self.calibration = tuple(float(v) for v in calibration)
        self.max_disagreement = float(max_disagreement)

    def hog_box(self, landmarks, hog_boxes):
        """The box of ``hog_boxes`` [K, 4] on the face of ``landmarks`` (overlapping the box its calibration
        puts around them by MIN_OVERLAP or more, the most if several), or None."""
        box = box_from_landmarks(landmarks, self.calibration)
        best = max(((overlap(box, b), tuple(b)) for b in np.asarray(hog_boxes, np.float64).reshape(-1, 4)),
                   default=(0.0, None))
        return best[1] if best[0] >= MIN_OVERLAP else None

    def fit(self, img, box):
        """The 68-point model's five points [5, 2] fitted in ``box`` (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.predictor(img, self.dlib.rectangle(x0, y0, x1, y1))
        return five_from_68(np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64))

    def __call__(self, img, landmarks, hog_boxes=()):
        box = self.hog_box(landmarks, hog_boxes)
        if box is None:  # dlib's frontal detector did not see this face: not a clear one
            return np.asarray(landmarks, np.float32), False
        fitted = self.fit(img, box)
        if disagreement(fitted, landmarks) <= self.max_disagreement:
            return fitted.astype(np.float32), True
        return np.asarray(landmarks, np.float32), False


__all__ = ["HOG_CALIBRATION", "MAX_DISAGREEMENT", "MIN_OVERLAP", "Refit68", "box_from_landmarks", "disagreement",
           "overlap"]

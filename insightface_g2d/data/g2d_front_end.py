"""The kit's masked-face front end (`--detector g2d`, the default of `g2d-data align`).

1. Proposals: dlib's HOG face detector (its five filters) and the kit's HOG filter trained on
   masked faces (``masked_hog.svm``) scan the photo together (one feature pyramid, upsampled
   ``upsample`` times, photos larger than ``max_side`` shrunk for this step), keeping boxes down to
   score ``threshold`` (below dlib's 0: masked faces score low; ``fallback_threshold`` when no box
   holds a face); each box becomes a first guess of the face's 112 frame through its filter's
   calibration (``front_end.json``).
2. The landmark network (``landmark_net``) looks at each guess (the best ``max_proposals``),
   returns five points and a face probability; guesses under ``PRESCREEN`` and repeats of a face
   are dropped, and the rest is looked at again aligned with its own points (``passes``). A face
   whose probability stays under ``min_score`` is not a face.
3. When no box holds a face, or the largest face found is small for the photo (eye distance under
   ``WHOLE_BELOW`` x its smaller side), the photo's centre is tried as the face too, at four sizes
   (portraits, and tight crops of one face as selfies and cropped photos are, where the face
   reaches the photo's edges and sliding-window detectors see no whole face).
4. Faces found twice (two filters, two guesses) are merged; one is picked (``pick``: largest eye
   distance, or nearest the photo's centre).

The dlib parts (HOG detector and filter file) are CC0 and the kit's own; the landmark network and
the masked filter are trained on LFW (see README, licences).
"""
from pathlib import Path

import cv2
import numpy as np

from .dlib_landmarks import _import_dlib
from .face_finding import FaceFinder, Finding
from .landmark_net import (HOG_CONFIG_KEY, INPUT, WEIGHTS_DIR, crop_views, frames_from_boxes, frames_from_landmarks,
                           load_landmark_net, read_config, view_to_photo)

# The photo tried as one face (step 3): frames centred on the photo, 0.55 to 1.6 x its smaller side
# (a portrait's face to a tight crop's).
WHOLE_PHOTO_GUESSES = ((0.0, 0.0, 0.55), (0.0, 0.0, 0.8), (0.0, 0.0, 1.15), (0.0, 0.0, 1.6))
SOURCES = ("hog", "masked-hog")
WHOLE_BELOW = 0.15  # try the photo as the face also when the largest face found has an eye distance under
                    # this share of the photo's smaller side
FLIP_ORDER = [1, 0, 2, 4, 3]                  # landmark order in a mirror image
PRESCREEN = 0.1                               # first-pass probability a guess needs for the later passes
DEFAULT_CALIBRATION = (0.0, -0.13, 1.27)      # a filter without its own: about dlib's HOG boxes


class G2DFrontEnd(FaceFinder):
    """``find(photo)`` -> Finding; score = the landmark network's face probability of the picked face.

    weights: a folder written by ``g2d-data train-landmarks`` (default: the shipped one).
    """

    name = "g2d"

    def __init__(self, weights=None, pick="largest", upsample=1, max_side=1024, threshold=-0.6, min_score=0.5,
                 passes=2, max_proposals=6, flip=True, fallback_threshold=-1.0):
        from .dlib_landmarks import pick_face
        from ..errors import DataError

        pick_face(np.zeros((0, 4)), (1, 1), pick)  # validates `pick`
        dlib = _import_dlib()
        folder = Path(weights) if weights is not None else WEIGHTS_DIR
        config = read_config(folder).get(HOG_CONFIG_KEY)
        if not config:
            raise DataError(f"{folder} holds no front end (front_end.json with a masked HOG filter); make one with "
                            "g2d-data train-landmarks or reinstall insightface-g2d")
        hog_path = folder / config["file"]
        if not hog_path.is_file():
            raise DataError(f"masked-face HOG filter {hog_path} not found; re-run g2d-data train-landmarks")
        self.detectors = [dlib.get_frontal_face_detector(), dlib.fhog_object_detector(str(hog_path))]
        self.calibration = {int(k): v for k, v in config["calibration"].items()}
        self.net = load_landmark_net(folder)
        self.pick, self.upsample, self.max_side = pick, int(upsample), int(max_side)
        self.threshold, self.min_score = float(threshold), float(min_score)
        self.fallback_threshold = float(fallback_threshold)
        self.passes, self.max_proposals, self.flip = int(passes), int(max_proposals), bool(flip)
        self._dlib = dlib

    def proposals(self, img, threshold=None):
        """(boxes [N, 4] in photo pixels, HOG scores [N], filter index [N]), best score first."""
        threshold = self.threshold if threshold is None else threshold
        scale = min(1.0, self.max_side / max(img.shape[:2]))
        small = img
        if scale < 1.0:
            small = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        rects, scores, idx = self._dlib.fhog_object_detector.run_multiple(self.detectors, small, self.upsample,
                                                                          threshold)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float64).reshape(-1, 4)
        order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[: self.max_proposals]
        return boxes[order] / scale, np.asarray(scores, np.float64)[order], np.asarray(idx, np.int64)[order]

    def _faces(self, img, frames):
        """Landmarks and face probability of the distinct faces among first guesses `frames` [N, 2, 3]:
        (indices into frames [K], landmarks [K, 5, 2], probability [K]). Guesses under PRESCREEN after
        the first pass, and repeats of a face, are dropped before the later passes."""
        views, mats = crop_views(img, frames)
        points, prob = self.net.predict(views)
        lmk = view_to_photo(points, mats)
        idx = np.flatnonzero(prob >= PRESCREEN)
        idx = idx[merge_faces(lmk[idx], prob[idx])] if len(idx) else idx
        lmk, prob = lmk[idx], prob[idx]
        for p in range(self.passes - 1):
            if not len(idx):
                break
            views, mats = crop_views(img, frames_from_landmarks(lmk))
            if self.flip and p == self.passes - 2:  # the last pass also sees the mirror image: points averaged
                both, prob2 = self.net.predict(np.concatenate([views, views[:, :, ::-1]]))
                mirrored = both[len(views):][:, FLIP_ORDER]
                mirrored[:, :, 0] = (INPUT - 1) - mirrored[:, :, 0]
                points, prob = (both[:len(views)] + mirrored) / 2, (prob2[:len(views)] + prob2[len(views):]) / 2
            else:
                points, prob = self.net.predict(views)
            lmk = view_to_photo(points, mats)
        return idx, lmk, prob

    def _from_boxes(self, img, threshold=None):
        """Faces among the detector boxes: (boxes, sources, indices into boxes, landmarks, probabilities)."""
        boxes, _, det = self.proposals(img, threshold)
        frames = np.zeros((len(boxes), 2, 3))
        for k in range(len(boxes)):
            frames[k] = frames_from_boxes(boxes[k:k + 1], self.calibration.get(int(det[k]), DEFAULT_CALIBRATION))[0]
        sources = [SOURCES[min(int(i), 1)] for i in det]
        if not len(frames):
            return boxes, sources, np.zeros(0, np.int64), np.zeros((0, 5, 2)), np.zeros(0)
        return (boxes, sources) + self._faces(img, frames)

    def _whole_photo(self, img):
        """Faces among the centred guesses: (box, landmarks [K, 5, 2], probabilities [K])."""
        h, w = img.shape[:2]
        side = min(h, w)
        whole = np.array([w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2])
        frames = np.concatenate([frames_from_boxes(whole[None], c) for c in WHOLE_PHOTO_GUESSES])
        _, lmk, prob = self._faces(img, frames)
        return whole, lmk, prob

    def _find(self, img):
        boxes, sources, idx, lmk, prob = self._from_boxes(img)
        tried, best = len(boxes), float(prob.max()) if len(prob) else 0.0
        if not (prob >= self.min_score).any() and self.fallback_threshold < self.threshold:
            boxes, sources, idx, lmk, prob = self._from_boxes(img, self.fallback_threshold)
            tried, best = len(boxes), max(best, float(prob.max()) if len(prob) else 0.0)
        boxes, sources = [tuple(float(v) for v in b) for b in boxes], list(sources)
        iod = np.linalg.norm(lmk[:, 1] - lmk[:, 0], axis=1)
        found = prob >= self.min_score
        small = not found.any() or iod[found].max() < WHOLE_BELOW * min(img.shape[:2])
        if small:  # no face, or none as large as a photo of one face holds: try the photo as the face
            whole, lmk2, prob2 = self._whole_photo(img)
            boxes.append(tuple(float(v) for v in whole))
            sources.append("whole photo")
            idx = np.concatenate([idx, np.full(len(prob2), len(boxes) - 1)]).astype(np.int64)
            lmk, prob = np.concatenate([lmk, lmk2]), np.concatenate([prob, prob2])
            best = max(best, float(prob2.max()) if len(prob2) else 0.0)
        if not (prob >= self.min_score).any():
            return Finding(reason=f"no face found ({tried} detector boxes down to score {self.fallback_threshold:g}, "
                                  f"then the photo's centre; the best guess scored {best:.2f}, under "
                                  f"{self.min_score:g})")
        keep = np.flatnonzero(prob >= self.min_score)
        keep = keep[merge_faces(lmk[keep], prob[keep])]  # two guesses may have converged on one face
        k = keep[pick_by_landmarks(lmk[keep], img.shape, self.pick)]
        return Finding(lmk[k].astype(np.float32), float(prob[k]), len(keep), boxes[idx[k]], sources[idx[k]],
                       outcome="found")


def merge_faces(lmk, prob):
    """Indices of distinct faces among landmark sets [N, 5, 2]: sets whose eye midpoints lie within half
    an eye distance of a more probable set's are the same face."""
    order = np.argsort(-np.asarray(prob), kind="stable")
    mids = lmk[:, :2].mean(axis=1)
    iod = np.linalg.norm(lmk[:, 1] - lmk[:, 0], axis=1)
    kept = []
    for i in order:
        if all(np.linalg.norm(mids[i] - mids[j]) > 0.5 * max(iod[j], 1e-6) for j in kept):
            kept.append(int(i))
    return np.asarray(kept, np.int64)


def pick_by_landmarks(lmk, shape, pick):
    """Index of the face to keep among landmark sets [N, 5, 2]: "largest" eye distance or "center"
    (eye-mouth centre nearest the photo's centre); ties go to the first."""
    if pick == "largest":
        return int(np.argmax(np.linalg.norm(lmk[:, 1] - lmk[:, 0], axis=1)))
    h, w = shape[:2]
    centre = (lmk[:, :2].mean(axis=1) + lmk[:, 3:].mean(axis=1)) / 2
    return int(np.argmin(((centre - [w / 2.0, h / 2.0]) ** 2).sum(axis=1)))


__all__ = ["G2DFrontEnd", "frames_from_landmarks", "merge_faces", "pick_by_landmarks"]

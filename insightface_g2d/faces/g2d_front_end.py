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
3. When no box holds a face, the largest face found is small for the photo (``face_sizes`` under
   ``WHOLE_BELOW`` x its smaller side) or none is sure (``SURE``), the photo's centre is tried as
   the face too, at four sizes (portraits, and tight crops of one face as selfies and cropped
   photos are, where the face reaches the photo's edges and sliding-window detectors see no whole
   face).
4. Faces found twice (two filters, two guesses) are merged. A face from the centre guesses that is
   made of faces the detectors found is dropped: on a group photo it spans several people, on a
   turned head it is the detector's face misfitted larger (``holds_faces``). One face is picked
   (``pick``: the largest, ``face_sizes``, or nearest the photo's centre).
5. A clear face (dlib's own frontal HOG filter drew a box on it in step 1) is refitted by dlib's
   68-point model in that box (``landmark_refit.Refit68``) and keeps the refit's points when they
   agree with the network's: the convention LFW's landmarks and dlib's recognizer use.
   ``refit=False`` keeps the network's points; ``assume_cropped`` runs no detector, so no refit.

``assume_cropped=True`` (``g2d-data align --assume-cropped``): the photo is known to be one face crop
(the face fills 70-100 % of it, as in masked-face data sets): no detector runs, the face is looked
for only in frames of that size around the photo's centre (``CROPPED_GUESSES``), and the most
probable one is returned whatever its probability (the network's points).

The dlib parts (HOG detector and filter file) are CC0 and the kit's own; the landmark network and
the masked filter are trained on LFW (see README, licences).
"""
from pathlib import Path

import cv2
import numpy as np

from ..data.align import ARCFACE_TEMPLATE
from .dlib_landmarks import _import_dlib
from .face_finding import FaceFinder, Finding
from .front_end_folder import read_front_end
from .front_end_config import WEIGHTS_DIR
from .landmark_views import INPUT, crop_views, frames_from_boxes, frames_from_landmarks, view_to_photo
from .landmark_refit import HOG_CALIBRATION, Refit68

# The photo tried as one face (step 3): frames centred on the photo, 0.55 to 1.6 x its smaller side
# (a portrait's face to a tight crop's).
WHOLE_PHOTO_GUESSES = ((0.0, 0.0, 0.55), (0.0, 0.0, 0.8), (0.0, 0.0, 1.15), (0.0, 0.0, 1.6))
# A photo that is one face crop (assume_cropped): the face box (a HOG box) fills 70 to 100 % of the
# photo's smaller side; the 112 frame spans 1.24 box sides, its centre 0.15 box sides above the box's.
CROPPED_FILLS = (0.7, 0.85, 1.0)
CROPPED_GUESSES = tuple((0.0, -0.15 * f, 1.24 * f) for f in CROPPED_FILLS)
SOURCES = ("hog", "masked-hog")
WHOLE_BELOW = 0.15  # try the photo as the face also when the largest face found (face_sizes) is under
                    # this share of the photo's smaller side
SURE = 0.9          # ... or when no face found has at least this probability
TEMPLATE_IOD = float(np.linalg.norm(ARCFACE_TEMPLATE[1] - ARCFACE_TEMPLATE[0]))
UPPER_FACE = ((8.0, 16.0), (104.0, 80.0))     # 112-frame box from the brows to under the nose (holds_faces)
GROUP_APART = 20.0                            # 112-frame pixels between two faces a centre guess spans
FLIP_ORDER = [1, 0, 2, 4, 3]                  # landmark order in a mirror image
PRESCREEN = 0.1                               # first-pass probability a guess needs for the later passes
DEFAULT_CALIBRATION = (0.0, -0.13, 1.27)      # a filter without its own: about dlib's HOG boxes


class G2DFrontEnd(FaceFinder):
    """``find(photo)`` -> Finding; score = the landmark network's face probability of the picked face.

    weights: a folder written by ``g2d-data train-landmarks`` (default: the shipped one), or one
    written by ``g2d-face export`` (landmarks.onnx: the network on onnxruntime, no PyTorch).
    """

    name = "g2d"
    refit = None            # a Refit68, or None: the network's points as they are
    assume_cropped = False  # the photo is one face crop
    _hog_boxes = np.zeros((0, 4))

    def __init__(self, weights=None, pick="largest", upsample=1, max_side=1024, threshold=-0.6, min_score=0.5,
                 passes=2, max_proposals=6, flip=True, fallback_threshold=-1.0, refit=True, assume_cropped=False):
        from .dlib_landmarks import pick_face
        from ..errors import DataError

        pick_face(np.zeros((0, 4)), (1, 1), pick)  # validates `pick`
        dlib = _import_dlib()
        folder = Path(weights) if weights is not None else WEIGHTS_DIR
        front_end = read_front_end(folder)  # the whole folder checked before anything is built
        try:
            masked = dlib.fhog_object_detector(str(front_end.hog_path))
        except RuntimeError as err:  # what check_hog_file could not foresee
            first = (str(err).strip().splitlines() or ["?"])[0][:160]
            raise DataError(f"dlib cannot load HOG filter {front_end.hog_path}: {first}; re-run g2d-data "
                            "train-landmarks") from None
        self.detectors = [dlib.get_frontal_face_detector(), masked]
        self.calibration = front_end.calibration
        self.net = front_end.landmark_net()  # PyTorch, or onnxruntime for a folder holding landmarks.onnx
        self.pick, self.upsample, self.max_side = pick, int(upsample), int(max_side)
        self.threshold, self.min_score = float(threshold), float(min_score)
        self.fallback_threshold = float(fallback_threshold)
        self.passes, self.max_proposals, self.flip = int(passes), int(max_proposals), bool(flip)
        self._dlib = dlib
        self.refit = Refit68(self.calibration.get(0, HOG_CALIBRATION)) if refit else None
        self.assume_cropped = bool(assume_cropped)

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
        boxes, scores, det = self.proposals(img, threshold)
        self._hog_boxes = boxes[(det == 0) & (scores >= 0.0)]  # dlib's own detections, for the refit
        frames = np.zeros((len(boxes), 2, 3))
        for k in range(len(boxes)):
            frames[k] = frames_from_boxes(boxes[k:k + 1], self.calibration.get(int(det[k]), DEFAULT_CALIBRATION))[0]
        sources = [SOURCES[min(int(i), 1)] for i in det]
        if not len(frames):
            return boxes, sources, np.zeros(0, np.int64), np.zeros((0, 5, 2)), np.zeros(0)
        return (boxes, sources) + self._faces(img, frames)

    def _whole_photo(self, img, guesses=WHOLE_PHOTO_GUESSES):
        """Faces among the centred guesses: (box, landmarks [K, 5, 2], probabilities [K])."""
        h, w = img.shape[:2]
        side = min(h, w)
        whole = np.array([w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2])
        frames = np.concatenate([frames_from_boxes(whole[None], c) for c in guesses])
        _, lmk, prob = self._faces(img, frames)
        return whole, lmk, prob

    def _find(self, img):
        self._hog_boxes = np.zeros((0, 4))
        found = self._find_cropped(img) if self.assume_cropped else self._find_in_photo(img)
        return self._refitted(img, found)

    def _refitted(self, img, found):
        """`found` with dlib's 68-point refit applied (when on, and the face is one dlib's detector drew)."""
        if self.refit is not None and found.landmarks is not None:
            found.landmarks, found.refit = self.refit(img, found.landmarks, self._hog_boxes)
        return found

    def _find_cropped(self, img):
        """The photo is one face crop: the most probable of the CROPPED_GUESSES faces."""
        whole, lmk, prob = self._whole_photo(img, CROPPED_GUESSES)
        if not len(prob):  # every guess under PRESCREEN: the first pass of the middle guess
            frames = frames_from_boxes(whole[None], CROPPED_GUESSES[1])
            views, mats = crop_views(img, frames)
            points, prob = self.net.predict(views)
            lmk = view_to_photo(points, mats)
        k = int(np.argmax(prob))
        return Finding(lmk[k].astype(np.float32), float(prob[k]), 1, tuple(float(v) for v in whole), "whole photo",
                       outcome="found")

    def _find_in_photo(self, img):
        faces = self._distinct_faces(img)
        if isinstance(faces, Finding):
            return faces
        keep, lmk, prob, boxes, idx, sources = faces
        k = keep[pick_by_landmarks(lmk[keep], img.shape, self.pick)]
        return Finding(lmk[k].astype(np.float32), float(prob[k]), len(keep), boxes[idx[k]], sources[idx[k]],
                       outcome="found")

    def find_all(self, img):
        """Every distinct face of the photo as a Finding, the one ``find`` picks first, then by size
        (largest first); when there is none, the one Finding that says why (landmarks None)."""
        from .face_finding import check_photo, too_small

        img = check_photo(img)
        if self.assume_cropped or too_small(img) is not None:
            return [self.find(img)]
        self._hog_boxes = np.zeros((0, 4))
        faces = self._distinct_faces(img)
        if isinstance(faces, Finding):
            return [faces]
        keep, lmk, prob, boxes, idx, sources = faces
        first = keep[pick_by_landmarks(lmk[keep], img.shape, self.pick)]
        rest = [k for k in keep[np.argsort(-face_sizes(lmk[keep]), kind="stable")] if k != first]
        return [self._refitted(img, Finding(lmk[k].astype(np.float32), float(prob[k]), len(keep), boxes[idx[k]],
                                            sources[idx[k]], outcome="found")) for k in [first] + rest]

    def _distinct_faces(self, img):
        """(indices of the distinct faces, landmarks, probabilities, boxes, box index per face, sources),
        or a Finding saying why there is none."""
        boxes, sources, idx, lmk, prob = self._from_boxes(img)
        tried, best = len(boxes), float(prob.max()) if len(prob) else 0.0
        if not (prob >= self.min_score).any() and self.fallback_threshold < self.threshold:
            boxes, sources, idx, lmk, prob = self._from_boxes(img, self.fallback_threshold)
            tried, best = len(boxes), max(best, float(prob.max()) if len(prob) else 0.0)
        boxes, sources = [tuple(float(v) for v in b) for b in boxes], list(sources)
        found = prob >= self.min_score
        small = not found.any() or face_sizes(lmk[found]).max() < WHOLE_BELOW * min(img.shape[:2]) \
            or prob[found].max() < SURE
        if small:  # no face, none as large as a photo of one face holds, or none sure: try the photo as the face
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
        is_guess = np.array([sources[idx[k]] == "whole photo" for k in keep], bool)
        if is_guess.any() and not is_guess.all():  # the detectors' faces win over centre guesses made of them
            guesses, detected = keep[is_guess], keep[~is_guess]
            made_of = holds_faces(lmk[guesses], lmk[detected], prob[guesses], prob[detected])
            keep = np.concatenate([detected, guesses[~made_of]])
        keep = keep[merge_faces(lmk[keep], prob[keep])]  # two guesses may have converged on one face
        return keep, lmk, prob, boxes, idx, sources


def merge_faces(lmk, prob):
    """Indices of distinct faces among landmark sets [N, 5, 2], most probable first: a set is a repeat of a
    more probable one when its eye midpoint lies within half an eye distance of that one's, or when each
    holds the other's eye midpoint in its upper face (``UPPER_FACE``: one face fitted twice, once off)."""
    order = np.argsort(-np.asarray(prob), kind="stable")
    mids = lmk[:, :2].mean(axis=1)
    iod = np.linalg.norm(lmk[:, 1] - lmk[:, 0], axis=1)
    frames = frames_from_landmarks(lmk)

    def upper(i, j):  # face i's upper face holds face j's eye midpoint
        return bool(in_upper_face(frames[i], mids[j:j + 1])[0])

    kept = []
    for i in order:
        if all(np.linalg.norm(mids[i] - mids[j]) > 0.5 * max(iod[j], 1e-6) and not (upper(i, j) and upper(j, i))
               for j in kept):
            kept.append(int(i))
    return np.asarray(kept, np.int64)


def face_sizes(lmk, frames=None):
    """Size of faces [N, 5, 2]: the eye distance in photo pixels each would have if seen from the front (the
    template's, over the alignment similarity's scale), which unlike the eye distance does not shrink
    as the head turns. `frames`: their frames_from_landmarks, when already at hand."""
    frames = frames_from_landmarks(lmk) if frames is None else frames
    if not len(frames):
        return np.zeros(0)
    return TEMPLATE_IOD / np.sqrt(np.abs(np.linalg.det(frames[:, :, :2]))).clip(1e-12)


def in_upper_face(frame, points):
    """[K] True where photo points [K, 2] fall in the upper face (``UPPER_FACE``) of a face's 112 frame [2, 3]."""
    return _in_upper_box(np.asarray(points, np.float64) @ frame[:, :2].T + frame[:, 2])


def _in_upper_box(p):
    """[K] True where 112-frame points [K, 2] fall in ``UPPER_FACE``."""
    (x0, y0), (x1, y1) = UPPER_FACE
    return (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)


def holds_faces(outer, inner, outer_prob=None, inner_prob=None):
    """[N] True where face `outer[i]` is made of the faces `inner` [K, 5, 2]: one with its eye midpoint in
    its upper face (``UPPER_FACE`` of its 112 frame) that is at least half its size (``face_sizes``) or
    at least as probable (it is that face, misfitted or guessed around it), or two with theirs anywhere
    in its frame, ``GROUP_APART`` frame pixels apart or more (it spans a group). A smaller, less
    probable face in its upper face (an eye, a logo) does not count. Without probabilities only
    sizes count."""
    mids = inner[:, :2].mean(axis=1)
    sizes = face_sizes(inner)
    outer_prob = np.full(len(outer), np.inf) if outer_prob is None else np.asarray(outer_prob, np.float64)
    inner_prob = np.zeros(len(inner)) if inner_prob is None else np.asarray(inner_prob, np.float64)
    frames = frames_from_landmarks(outer)
    held = np.zeros(len(outer), bool)
    for i, (m, size) in enumerate(zip(frames, face_sizes(outer, frames))):
        p = mids @ m[:, :2].T + m[:, 2]
        upper = _in_upper_box(p)
        same = (upper & ((sizes >= 0.5 * size) | (inner_prob >= outer_prob[i]))).any()
        q = p[((p >= 0) & (p <= 112)).all(axis=1)]
        group = len(q) >= 2 and np.linalg.norm(q[:, None] - q[None], axis=2).max() >= GROUP_APART
        held[i] = bool(same or group)
    return held


def pick_by_landmarks(lmk, shape, pick):
    """Index of the face to keep among landmark sets [N, 5, 2]: "largest" (``face_sizes``) or "center"
    (eye-mouth centre nearest the photo's centre); ties go to the first."""
    if pick == "largest":
        return int(np.argmax(face_sizes(lmk)))
    h, w = shape[:2]
    centre = (lmk[:, :2].mean(axis=1) + lmk[:, 3:].mean(axis=1)) / 2
    return int(np.argmin(((centre - [w / 2.0, h / 2.0]) ** 2).sum(axis=1)))


__all__ = ["G2DFrontEnd", "face_sizes", "frames_from_landmarks", "holds_faces", "merge_faces", "pick_by_landmarks"]

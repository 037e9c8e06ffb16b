"""Tight face crops made from photos with true landmarks: the test set of photos that are already a
face crop (as real masked-face data sets ship them: the face fills the image).

The face box is the square a frontal face detector returns (brows to chin, cheek to cheek), placed
by the true landmarks' 112 frame: ``FACE_BOX`` in 112-frame pixels, the inverse of dlib's HOG box
calibration rounded (the frame spans 1.24 box widths, its centre 0.15 box widths above the box's).
A crop whose face *fills* f of the image is the upright square of side (face box side) / f around
the face box's centre, resized to ``size`` x ``size``: f = 1 cuts at the brows and the chin.

    crop, lmk = tight_crop(photo, true_landmarks, fill=0.85, size=160)   # lmk: the landmarks in the crop
"""
import cv2
import numpy as np

from .landmark_views import frames_from_landmarks

FACE_BOX_SIDE = 90.5             # 112-frame pixels (112 / 1.2376, dlib's HOG box)
FACE_BOX_CENTRE = (56.0, 69.6)   # 112-frame pixels (0.15 box widths below the frame's centre)
FILLS = (0.7, 0.85, 1.0)         # the face box's share of the crop side
SIZES = (96, 128, 160, 224)      # crop sides in pixels


def face_box(landmarks):
    """(centre x, centre y, side) in photo pixels of the face box of true landmarks [5, 2]."""
    m = frames_from_landmarks(np.asarray(landmarks, np.float64)[None])[0]
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))
    centre = inv[:2, :2] @ np.asarray(FACE_BOX_CENTRE) + inv[:2, 2]
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    return float(centre[0]), float(centre[1]), FACE_BOX_SIDE / scale


def tight_crop(photo, landmarks, fill, size):
    """(uint8 [size, size, 3] crop whose face box fills ``fill`` of its side, landmarks [5, 2] in the crop).

    Parts of the crop beyond the photo repeat its edge pixels (LFW's 250 px photos hold every crop of
    fill 0.7 and up)."""
    cx, cy, side = face_box(landmarks)
    s = size / (side / float(fill))
    m = np.array([[s, 0.0, size / 2.0 - s * cx], [0.0, s, size / 2.0 - s * cy]])
    # shrinking more than 2x: average first, as a camera or a resize tool would
    factor = max(1, int(1.0 / s / 1.5))
    src = photo
    if factor > 1:
        src = cv2.resize(photo, (round(photo.shape[1] / factor), round(photo.shape[0] / factor)),
                         interpolation=cv2.INTER_AREA)
        sx, sy = photo.shape[1] / src.shape[1], photo.shape[0] / src.shape[0]
        to_photo = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        warp = (np.vstack([m, [0.0, 0.0, 1.0]]) @ to_photo)[:2]
    else:
        warp = m
    crop = cv2.warpAffine(np.ascontiguousarray(src), warp, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    lmk = np.asarray(landmarks, np.float64) @ m[:, :2].T + m[:, 2]
    return crop, lmk


def eyes_placed(found, true, tolerance=0.1):
    """True when both found eyes lie within ``tolerance`` x the true eye distance of the true eyes."""
    true = np.asarray(true, np.float64)
    iod = float(np.linalg.norm(true[1] - true[0]))
    d = np.linalg.norm(np.asarray(found, np.float64)[:2] - true[:2], axis=1)
    return bool((d <= tolerance * iod).all())


__all__ = ["FACE_BOX_CENTRE", "FACE_BOX_SIDE", "FILLS", "SIZES", "eyes_placed", "face_box", "tight_crop"]

"""What the recognizer returns: faces, verification and search results (plain dataclasses).

Scores are cosine similarities of L2-normalised embeddings, -1..1 (1: the same vector); a pair is
the same person when score >= threshold.
"""
from dataclasses import dataclass, field

import numpy as np

UNITS = "cosine"
UNKNOWN = "unknown"


@dataclass
class Face:
    """One face of a photo.

    box: (x0, y0, x1, y1) in photo pixels of the detector box the face came from (None when the
    finder gives none); landmarks: float32 [5, 2] (left eye, right eye, nose, left and right mouth
    corner); detection_score: the finder's confidence (the kit's front end: its landmark network's
    face probability, 0..1); masked_score: how likely the face wears a mask, 0..1, or None: the
    shipped finders do not estimate it (source says which detector found the face: "masked-hog" is
    the front end's filter trained on masked faces); crop: uint8 [112, 112, 3] RGB aligned face;
    embedding: float32 [dim], L2-normalised.
    """

    box: tuple
    landmarks: np.ndarray
    detection_score: float
    masked_score: object
    source: str
    crop: np.ndarray
    embedding: np.ndarray = None


class FaceList(list):
    """The faces of one photo, the picked one (the largest, or as `pick` says) first. Empty when the
    photo holds no face: then `reason` says why (no face found, too small, unreadable)."""

    def __init__(self, faces=(), reason="", name="photo"):
        super().__init__(faces)
        self.reason = reason
        self.name = name


@dataclass
class Verification:
    """score: cosine similarity of the two faces' embeddings (None when a photo has no face);
    same: score >= threshold; threshold, threshold_name: which threshold decided it and where it
    comes from; reason: why there is no score."""

    score: object
    same: bool
    threshold: float
    threshold_name: str
    units: str = UNITS
    reason: str = ""


@dataclass
class Match:
    identity: str
    score: float       # cosine similarity: the best over the identity's enrolled photos
    photo: str = ""    # the enrolled photo that scored it


@dataclass
class SearchResult:
    """identity: the best match, or "unknown" when its score is under the threshold (open set) or the
    probe has no face (reason says so); matches: the top-k identities, best first."""

    identity: str
    score: object
    matches: list = field(default_factory=list)
    threshold: float = float("nan")
    threshold_name: str = ""
    units: str = UNITS
    reason: str = ""

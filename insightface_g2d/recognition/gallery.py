"""A gallery of enrolled faces, saved as .npz (read back with allow_pickle=False: no code runs).

Keys: format (GALLERY_FORMAT), model (the spec that embedded it), identities [K] str, labels [M]
(index into identities of each enrolled photo), embeddings float32 [M, dim] (L2-normalised), photos
[M] str. An identity's score against a probe is its best cosine over its enrolled photos, so masked
and unmasked photos of a person each match their kind of probe.
"""
import os
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..fileio import atomic_open, write_errors
from .results import Match

GALLERY_FORMAT = "insightface_g2d gallery v1"
KEYS = ("format", "model", "identities", "labels", "embeddings", "photos")


@dataclass
class Gallery:
    identities: list
    embeddings: np.ndarray
    labels: np.ndarray
    photos: list
    model: str = ""

    def rank(self, embedding, top_k=5):
        """The top_k identities by their best cosine score against an L2-normalised embedding."""
        if not len(self.labels):
            return []
        scores = self.embeddings.astype(np.float64) @ np.asarray(embedding, np.float64)
        best = np.full(len(self.identities), -np.inf)
        where = np.full(len(self.identities), -1)
        order = np.argsort(-scores, kind="stable")
        for i in order[::-1]:  # the best photo of each identity is written last
            best[self.labels[i]], where[self.labels[i]] = scores[i], i
        ranked = [k for k in np.argsort(-best, kind="stable") if where[k] >= 0][:max(1, int(top_k))]
        return [Match(self.identities[k], float(best[k]), self.photos[where[k]]) for k in ranked]

    def save(self, path):
        """Write the gallery atomically as .npz; returns the path."""
        path = os.fspath(path)
        with write_errors(path, option="--out"), atomic_open(path, "wb") as f:
            np.savez(f, format=np.array(GALLERY_FORMAT), model=np.array(str(self.model)),
                     identities=np.array(self.identities, dtype=str), labels=np.asarray(self.labels, np.int64),
                     embeddings=np.asarray(self.embeddings, np.float32), photos=np.array(self.photos, dtype=str))
        return path


def load_gallery(path):
    """A Gallery from a file `Gallery.save` wrote; DataError (one line) for anything else."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"gallery file {path} not found; make one with g2d-face enroll --gallery DIR --out {path}")
    not_ours = f"{path} is not a gallery of g2d-face enroll"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                raise DataError(f"{not_ours} (it lacks {', '.join(missing)})")
            arrays = {k: data[k] for k in KEYS}
    except (OSError, ValueError) as err:  # not a zip, pickled objects, truncated
        raise DataError(f"{not_ours} ({str(err).splitlines()[0][:120]})") from None
    if str(arrays["format"]) != GALLERY_FORMAT:
        raise DataError(f"{not_ours} (format {str(arrays['format'])[:60]!r})")
    emb, labels = arrays["embeddings"], arrays["labels"]
    identities, photos = [str(x) for x in arrays["identities"]], [str(x) for x in arrays["photos"]]
    if emb.ndim != 2 or labels.ndim != 1 or len(emb) != len(labels) or len(photos) != len(labels) \
            or emb.dtype != np.float32 or labels.dtype.kind != "i" \
            or (len(labels) and (labels.min() < 0 or labels.max() >= len(identities))) \
            or not np.isfinite(emb).all():
        raise DataError(f"{not_ours} (inconsistent arrays: embeddings {emb.shape}, labels {labels.shape}, "
                        f"{len(identities)} identities)")
    return Gallery(identities, emb, labels, photos, str(arrays["model"]))

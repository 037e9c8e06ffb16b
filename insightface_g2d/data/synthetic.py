"""SyntheticFaces: a built-in face-recognition dataset of procedurally drawn, aligned cartoon faces.

Needs no download: every image is drawn on the fly (about 1-2k images/s on one core) and is a
pure function of (seed, identity, image number), so two processes, workers or machines that build
the same dataset see the same bytes. Identities are numbered globally: identity g of seed s looks
the same in every dataset that contains it, so `identity_offset` carves disjoint train and
held-out sets out of one population: SyntheticFaces(1000, 20) for training and
SyntheticFaces(200, 20, identity_offset=1000) for evaluation share no person.
"""
import functools
import hashlib

import cv2
import numpy as np
from torch.utils.data import Dataset

from insightface_g2d.data import synthetic_draw
from insightface_g2d.errors import DataError

# Bump when the drawing changes: it is part of the fingerprint, so cached teacher embeddings
# of older images are not reused.
GENERATOR_VERSION = 1

# First words of the SeedSequence entropy, so identity and photo streams never coincide.
_IDENTITY_STREAM = 0x1D
_PHOTO_STREAM = 0x9A


@functools.lru_cache(maxsize=2048)
def synthetic_identity(seed, identity):
    """Parameters and pre-rendered layers of global identity `identity` under `seed`.

    Cached per process (about 2 ms to build, 55 KB each, the last 2048 used are kept).
    """
    rng = np.random.default_rng([_IDENTITY_STREAM, seed, identity])
    return synthetic_draw.sample_identity(rng)


def render_face(seed, identity, photo):
    """Photo number `photo` of global identity `identity`: (uint8 [112, 112, 3] RGB, float32 [5, 2] landmarks)."""
    d = synthetic_identity(seed, identity)
    return synthetic_draw.render(d, np.random.default_rng([_PHOTO_STREAM, seed, identity, photo]))


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"SyntheticFaces: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class SyntheticFaces(Dataset):
    """Procedural aligned faces: `num_identities` people x `images_per_identity` photos each.

    Item i is photo i % images_per_identity of global identity identity_offset + i // images_per_identity,
    returned as (uint8 [size, size, 3] RGB, label = i // images_per_identity in [0, num_identities)).
    Faces are drawn at 112x112 on the ArcFace five-point template and resized when size != 112.
    cache=True keeps each drawn image in memory (per process) for repeated epochs.
    """

    def __init__(self, num_identities=200, images_per_identity=20, seed=0, size=112, identity_offset=0,
                 cache=False):
        self.num_identities = _check_int("num_identities", num_identities, 1)
        self.images_per_identity = _check_int("images_per_identity", images_per_identity, 1)
        self.seed = _check_int("seed", seed, 0)
        self.size = _check_int("size", size, 8)
        self.identity_offset = _check_int("identity_offset", identity_offset, 0)
        self._cache = {} if cache else None

    @property
    def num_classes(self):
        return self.num_identities

    def __len__(self):
        return self.num_identities * self.images_per_identity

    @property
    def labels(self):
        """int64 [len(self)]: the label of every item, without drawing anything."""
        return np.repeat(np.arange(self.num_identities, dtype=np.int64), self.images_per_identity)

    def _index(self, i):
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"SyntheticFaces index {i} out of range for {n} images")
        return i

    def render(self, i):
        """Item i with its five landmarks: (uint8 [size, size, 3], float32 [5, 2] in pixels of that size)."""
        i = self._index(i)
        label, photo = divmod(i, self.images_per_identity)
        img, lmk = render_face(self.seed, self.identity_offset + label, photo)
        if self.size != synthetic_draw.CANVAS:
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
            lmk = lmk * np.float32(self.size / synthetic_draw.CANVAS)
        return img, lmk

    def landmarks(self, i):
        """float32 [5, 2]: the five points of item i (eye centres, nose tip, mouth corners) after its pose jitter."""
        return self.render(i)[1]

    def __getitem__(self, i):
        i = self._index(i)
        if self._cache is not None and i in self._cache:
            img = self._cache[i]
        else:
            img = self.render(i)[0]
            if self._cache is not None:
                self._cache[i] = img
        return img.copy() if self._cache is not None else img, i // self.images_per_identity

    def fingerprint(self):
        key = (f"synthetic-v{GENERATOR_VERSION}:ids={self.num_identities},per_id={self.images_per_identity},"
               f"seed={self.seed},offset={self.identity_offset},size={self.size}")
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def __repr__(self):
        return (f"SyntheticFaces(num_identities={self.num_identities}, images_per_identity="
                f"{self.images_per_identity}, seed={self.seed}, size={self.size}, "
                f"identity_offset={self.identity_offset})")


"""Teacher geometry: how a teacher's embeddings are turned into distillation targets.

Every relational term compares L2-normalised vectors, so it only sees a teacher's embeddings as
directions from the origin. ArcFace-style teachers are roughly centred there; others are not:
dlib's ResNet puts a common mean vector of norm 1.30 under embeddings of norm 1.43, so any two
faces are at cosine ~0.83 and the same person at ~0.95. Normalised as they are, those targets
are nearly constant and a student learns little from them. Moving the origin to the teacher's
mean restores the spread identities really have (the same relations an ArcFace teacher gives).

Modes (config.teacher.geometry):
  center        subtract the teacher's mean embedding over the training set (default)
  whiten        center, then ZCA-whiten (every direction of the teacher's embedding space weighted
                alike; regularised by `eps` times the mean eigenvalue)
  batch-center  subtract the mean of each batch's targets (no statistics needed; noisy at small N)
  none          the embeddings as the teacher gives them

Statistics come from the teacher's embeddings of the training set's clean faces: all of them from a
cache, or, for a live teacher, one pass over a fixed, evenly spaced sample of 2,048 of them.
For a teacher whose mean is already near the origin `center` changes targets by a tiny rotation.
"""
import numpy as np
import torch

from ..errors import ConfigError

GEOMETRIES = ("center", "whiten", "batch-center", "none")
DEFAULT_GEOMETRY = "center"
SAMPLE_SIZE = 2048  # faces a live teacher embeds to estimate its statistics


def check_geometry(name, where="teacher.geometry"):
    if name not in GEOMETRIES:
        from ..errors import suggest

        raise ConfigError(f"{where} must be one of {', '.join(GEOMETRIES)}, got {name!r}{suggest(str(name), GEOMETRIES)}")
    return name


def needs_statistics(name):
    return name in ("center", "whiten")


class TargetGeometry:
    """A fixed affine map of teacher embeddings: (x - mean) @ matrix (matrix None = identity)."""

    def __init__(self, mode, mean=None, matrix=None):
        self.mode = check_geometry(mode)
        self.mean = None if mean is None else torch.as_tensor(np.asarray(mean, np.float32))
        self.matrix = None if matrix is None else torch.as_tensor(np.asarray(matrix, np.float32))
        self._constants = {}  # (device, dtype) -> (mean, matrix) there, converted once

    def _constants_for(self, device, dtype):
        key = (device, dtype)
        if key not in self._constants:
            self._constants[key] = (self.mean.to(device, dtype),
                                    None if self.matrix is None else self.matrix.to(device, dtype))
        return self._constants[key]

    @classmethod
    def fit(cls, mode, embeddings, eps=1e-2):
        """Statistics of `embeddings` (N x D array-like) for `mode`."""
        check_geometry(mode)
        if not needs_statistics(mode):
            return cls(mode)
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ConfigError(f"teacher geometry {mode!r} needs at least 2 embeddings, got shape {x.shape}")
        mean = x.mean(0)
        if mode == "center":
            return cls(mode, mean)
        cov = np.cov(x - mean, rowvar=False)
        vals, vecs = np.linalg.eigh(cov)
        vals = np.clip(vals, 0.0, None) + eps * max(vals.mean(), 1e-12)
        return cls(mode, mean, (vecs / np.sqrt(vals)) @ vecs.T)

    def __call__(self, targets):
        """N x D float tensor -> N x D float tensor (differentiable; constants follow its device)."""
        if self.mode == "none":
            return targets
        if self.mode == "batch-center":
            return targets - targets.mean(0, keepdim=True)
        mean, matrix = self._constants_for(targets.device, targets.dtype)
        out = targets - mean
        if matrix is not None:
            out = out @ matrix
        return out

    def describe(self):
        if self.mean is None:
            return self.mode
        return f"{self.mode} (mean norm {float(self.mean.norm()):.3f})"


def sample_indices(count, size=SAMPLE_SIZE):
    """Evenly spaced sample indices of a dataset of `count` faces (all of them when small)."""
    if count <= size:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, size).round().astype(np.int64))


def teacher_statistics_sample(teacher, dataset, batch_size=64):
    """N x D embeddings to fit a geometry on: the teacher's embeddings of the training set's clean
    faces, all of them from a cache (free), `sample_indices` of them from a live teacher (one pass;
    the same faces as the cache's when the set has at most SAMPLE_SIZE faces)."""
    stored = getattr(teacher, "embeddings", None)
    if stored is not None:
        return np.asarray(stored[:, 0], dtype=np.float32)
    if dataset is None:
        raise ConfigError("teacher geometry needs the training set to estimate the teacher's mean")
    from ..data.transforms import to_tensor

    idx = sample_indices(len(dataset))
    out = []
    for start in range(0, len(idx), batch_size):
        faces = np.stack([np.asarray(dataset[int(i)][0], dtype=np.uint8) for i in idx[start:start + batch_size]])
        with torch.no_grad():
            out.append(teacher.embed(to_tensor(faces).to(teacher.device)).float().cpu().numpy())
    return np.concatenate(out)


class GeometricTeacher:
    """A teacher whose targets pass through a TargetGeometry; everything else is the wrapped teacher's."""

    def __init__(self, teacher, geometry):
        self.teacher, self.geometry = teacher, geometry

    def __getattr__(self, name):
        return getattr(self.teacher, name)

    def embed(self, faces):
        return self.geometry(self.teacher.embed(faces))

    __call__ = embed

    def to(self, device):
        self.teacher.to(device)
        return self

    def __repr__(self):
        return f"{self.teacher!r} with {self.geometry.describe()} geometry"


class GeometricCache(GeometricTeacher):
    """The same for a teacher cache, whose targets are looked up by sample index."""

    def lookup(self, indices, flipped=None, device=None):
        return self.geometry(self.teacher.lookup(indices, flipped, device=device))


def apply_geometry(teacher, mode, dataset=None, fitted=None):
    """`teacher` wrapped with geometry `mode` fitted on its statistics (unwrapped for 'none');
    `fitted`: a TargetGeometry already fitted for the same teacher, used instead of a new fit."""
    check_geometry(mode)
    if mode == "none":
        return teacher
    wrapper = GeometricCache if hasattr(teacher, "lookup") else GeometricTeacher
    if fitted is None:
        fitted = (TargetGeometry.fit(mode, teacher_statistics_sample(teacher, dataset)) if needs_statistics(mode)
                  else TargetGeometry(mode))
    return wrapper(teacher, fitted)

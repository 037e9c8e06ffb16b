"""Writing a deployment bundle (bundle.py says what one is): `g2d-face export`. Needs PyTorch, onnx and
onnxruntime; the bundle it writes needs only onnxruntime."""
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..fileio import atomic_open, new_folder_beside, replace_folder, write_errors
from .bundle import (FORMAT, FORMAT_VERSION, FRONT_END, FRONT_END_LICENCE, LANDMARK_TOLERANCE, MANIFEST, RECOGNIZER,
                     REFIT_LICENCE, RUNS_WITH, THRESHOLDS, Bundle, BundleEmbedder, _sha256, is_bundle,
                     read_manifest)


def export_bundle(model, out, detector_folder=None, flip=None, force=False, check=True, tolerance=1e-4,
                  progress=False):
    """Write the bundle of `model` (any FaceRecognizer model with PyTorch weights: a run folder,
    NETWORK:CKPT, a ready model such as g2d_lfw, dlib_resnet) to folder `out`, with the front end of
    `detector_folder` (default: the shipped one) and the model's thresholds file when it has one.

    check: run random crops and views through PyTorch and onnxruntime, and refuse (ConfigError, the
    bundle removed) when an L2-normalised embedding or a landmark differs by more than `tolerance`.
    Returns dict(path, model, dim, files, parity)."""
    import torch

    from ..embedders.factory import build_embedder
    from ..evaluation.onnx_export import export_onnx
    from ..evaluation.thresholds import read_thresholds
    from ..faces.front_end_config import CONFIG_NAME, WEIGHTS_DIR
    from ..faces.front_end_folder import read_front_end
    from ..faces.landmark_net import export_landmark_onnx
    from ..version import __version__
    from .model_source import resolve_model, thresholds_file_for

    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"tolerance {tolerance!r}: give a finite number >= 0 (default 1e-4)")
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        raise ConfigError(f"{out} is a symbolic link: give the bundle folder itself as --out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder: choose another --out")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(f"{out} exists and is not empty: choose another --out or pass --force")
        if not is_bundle(out):
            raise ConfigError(f"{out} is not a bundle (its manifest.json, if any, is not one g2d-face export wrote); "
                              "--force only replaces a bundle: choose another --out")
    spec, model_file, shipped = resolve_model(model)
    if isinstance(spec, Bundle):
        raise ConfigError(f"{model} is a bundle already; give the model it was exported from")
    embedder = build_embedder(spec, device="cpu")
    network = getattr(embedder, "model", None)
    if not isinstance(network, torch.nn.Module):
        raise ConfigError(f"export needs a PyTorch face model (a run folder, NETWORK:CHECKPOINT, a ready model, "
                          f"dlib_resnet); {model!r} runs as {type(embedder).__name__}")
    warp = next((m.input_warp for m in network.modules() if hasattr(m, "input_warp")), None)
    size = int(warp["size"]) if warp is not None else 112
    thresholds_src = thresholds_file_for(model_file, shipped)
    measured = {s.get("flip") for s in read_thresholds(thresholds_src)["sets"].values()} if thresholds_src else set()
    measured = {v for v in measured if isinstance(v, bool)}
    flip = bool(flip) if flip is not None else (measured.pop() if len(measured) == 1 else True)
    front_src = Path(detector_folder) if detector_folder is not None else WEIGHTS_DIR
    front = read_front_end(front_src)
    if front.weights is None:
        raise ConfigError(f"{front_src} holds an ONNX landmark network already; give the front-end folder with "
                          "landmarks.pt it was exported from")

    staging = Path(new_folder_beside(out))
    (staging / FRONT_END).mkdir()
    try:
        with torch.no_grad():
            export_onnx(network, staging / RECOGNIZER, image_size=size)
        landmark_net = front.landmark_net()
        export_landmark_onnx(landmark_net, staging / FRONT_END / "landmarks.onnx")
        shutil.copyfile(front.hog_path, staging / FRONT_END / front.hog_path.name)
        shutil.copyfile(front_src / CONFIG_NAME, staging / FRONT_END / CONFIG_NAME)
        if thresholds_src:
            shutil.copyfile(thresholds_src, staging / THRESHOLDS)
        dim = int(embedder.dim)
        recognizer = dict(size=size, flip=flip, dim=dim,
                          warp=None if warp is None else np.asarray(warp["matrix"], np.float64).tolist())
        parity = check_bundle_parity(embedder, landmark_net, staging, recognizer) if check else None
        limits = {"embedding": tolerance, "probability": tolerance, "landmarks": LANDMARK_TOLERANCE}
        worse = {k: v for k, v in (parity or {}).items() if not v <= limits[k]}  # NaN is worse too
        if worse:
            raise ConfigError(f"the bundle differs from the PyTorch path by more than allowed ({limits}): {worse}; "
                              "report it with the model and the onnxruntime version")
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        import onnx
        import onnxruntime

        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "model": getattr(spec, "name", None) if not isinstance(spec, (str, dict)) else (model_file or str(spec)),
            "kit_version": __version__,
            "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__,
                              "onnxruntime": onnxruntime.__version__, "opset": 17},
            "recognizer": recognizer,
            "front_end": FRONT_END,
            "thresholds": THRESHOLDS if thresholds_src else None,
            "parity": parity,
            "runs_with": list(RUNS_WITH),
            "licences": {"front_end": FRONT_END_LICENCE, "refit": REFIT_LICENCE,
                         "recognizer": "the licence of the model's weights and of the data it was trained on "
                                       "(g2d_lfw: dlib's ResNet, CC0, trained further on LFW: research use)"},
            "files": {name: {"bytes": (staging / name).stat().st_size, "sha256": _sha256(staging / name)}
                      for name in files},
        }
        if not isinstance(manifest["model"], str) or not manifest["model"]:
            manifest["model"] = str(model)
        if os.path.isabs(manifest["model"]):
            manifest["model"] = os.path.basename(os.path.dirname(manifest["model"])) or manifest["model"]
        with write_errors(staging / MANIFEST), atomic_open(staging / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
        read_manifest(staging)  # never leave a bundle this kit cannot read
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dict(path=os.fspath(out), model=manifest["model"], dim=dim, files=files, parity=parity)


def check_bundle_parity(embedder, landmark_net, folder, recognizer, n=6, seed=0):
    """Largest differences between PyTorch and the bundle in `folder` on seeded random inputs:
    {"embedding": max |unit embedding difference| over n crops (flip as the bundle runs),
     "landmarks": max |point difference| in view pixels over n views, "probability": its face
     probability's}."""
    from ..evaluation.verification import l2_normalize
    from ..faces.landmark_net_onnx import OnnxLandmarkNet

    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)
    ref = l2_normalize(embedder.embed_images(crops, 64, recognizer["flip"], progress=False))
    spec = dict(recognizer, warp=None if recognizer["warp"] is None else np.asarray(recognizer["warp"], np.float64))
    got = l2_normalize(BundleEmbedder(Path(folder) / RECOGNIZER, spec, "check").embed_images(
        crops, 64, recognizer["flip"]))
    from ..faces.landmark_views import INPUT

    views = rng.integers(0, 256, size=(n, INPUT, INPUT, 3), dtype=np.uint8)
    p_ref, s_ref = landmark_net.predict(views)
    p_got, s_got = OnnxLandmarkNet(Path(folder) / FRONT_END / "landmarks.onnx").predict(views)
    return {"embedding": float(np.abs(ref - got).max()), "landmarks": float(np.abs(p_ref - p_got).max()),
            "probability": float(np.abs(s_ref - s_got).max())}

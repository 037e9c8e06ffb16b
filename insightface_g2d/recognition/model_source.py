"""Which face model a FaceRecognizer runs, and where its thresholds file is.

A model is any spec `embedders.factory.build_embedder` takes ("NETWORK:CHECKPOINT", "model.onnx",
"dlib", "dlib_resnet", a FaceEmbedder or nn.Module), a ready model the kit ships by name
(`g2d_lfw`: recognition/ready.py), a bundle folder (`g2d-face export`: recognition/bundle.py, no
PyTorch), or, for a g2d-train run, its output folder or its model.pt alone: the network is read
from the run's run_summary.json.
"""
import json
import os
from pathlib import Path

from ..errors import ConfigError

SUMMARY = "run_summary.json"
# Thresholds shipped with the kit, for models the kit knows by name (measured as their files say).
SHIPPED_THRESHOLDS = {"dlib": "dlib_resnet.thresholds.json", "dlib_resnet": "dlib_resnet.thresholds.json"}


def resolve_model(model):
    """(spec for build_embedder, the model's file or None, the shipped thresholds file or None)."""
    if not isinstance(model, (str, os.PathLike)):
        return model, None, None
    text = os.fspath(model)
    from .ready import READY_MODELS, build_ready_model, thresholds_file

    if text in READY_MODELS:  # a masked-face model the kit ships (recognition/ready.py)
        network = build_ready_model(text)
        network.name = text
        return network, None, thresholds_file(text)
    if os.path.isdir(text):
        from .bundle import MANIFEST, Bundle

        # a bundle (g2d-face export: onnxruntime, no PyTorch) has a manifest and no model.pt; a damaged
        # one is reported as a bundle, not as a run folder without model.pt
        if os.path.isfile(os.path.join(text, MANIFEST)) and not os.path.isfile(os.path.join(text, "model.pt")):
            bundle = Bundle(text)
            return bundle, None, bundle.thresholds
        return _run_folder(Path(text))
    if os.path.isfile(text) and text.lower().endswith((".pt", ".pth")):
        return _run_model_file(Path(text))
    from ..evaluation.thresholds import model_file_of

    shipped = SHIPPED_THRESHOLDS.get("dlib" if text.startswith("dlib:") else text)  # dlib:dlib-bin: same weights
    path = Path(__file__).with_name(shipped) if shipped else None
    return text, model_file_of(text), path if path is not None and path.is_file() else None


def _run_folder(folder):
    model = folder / "model.pt"
    if not model.is_file():
        raise ConfigError(f"{folder} holds no model.pt: give a finished g2d-train output folder, NETWORK:CHECKPOINT "
                          "or an .onnx file")
    return _run_model_file(model)


def _run_model_file(path):
    network = _network_of(path)
    if network is None:
        raise ConfigError(f"cannot tell which network {path} is (no {SUMMARY} of a g2d-train run beside it): "
                          f"give NETWORK:{path}, e.g. g2d:{path} or r50:{path}")
    return {"network": network, "checkpoint": str(path)}, str(path), None


def _network_of(path):
    """The network a g2d-train run names for its model file `path`, or None."""
    summary = path.parent / SUMMARY
    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("network"), str):
        return None
    written = doc.get("model")
    if written and os.path.basename(str(written)) != path.name:
        return None
    return doc["network"]


def thresholds_file_for(model_file, shipped):
    """The thresholds file found for a model: <stem>.thresholds.json beside its file, thresholds.json
    in a run folder, else the kit's shipped one; None when there is none."""
    from ..evaluation.thresholds import thresholds_path

    if model_file is not None:
        for candidate in (thresholds_path(model_file), os.path.join(os.path.dirname(os.path.abspath(model_file)),
                                                                      "thresholds.json")):
            if os.path.isfile(candidate):
                return candidate
    return os.fspath(shipped) if shipped is not None else None

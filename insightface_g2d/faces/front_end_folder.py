"""A front-end folder (``--detector g2d:DIR``, written by ``g2d-data train-landmarks``) checked as a
whole before anything is built from it: ``front_end.json`` against its schema, the HOG filter file
(hog_file.py), and the landmark network: weights read with ``weights_only=True``, their names and
shapes matched to the network the config describes and every value finite, or (a deployment
bundle's front end, no PyTorch) ``landmarks.onnx`` loaded by onnxruntime with the network's inputs
and outputs. Any problem is one DataError
naming the file and what is wrong.

Sizes are bounded by what the shipped network uses times ``SIZE_FACTOR``, so a hostile
``widths`` or ``hidden`` cannot ask for gigabytes; file names must be plain names of files in the
folder (no path, no link out of it).
"""
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .front_end_config import (CONFIG_NAME, FIX, HIDDEN, HOG_CONFIG_KEY, ONNX_NAME, WEIGHTS_DIR, WEIGHTS_NAME, WIDTHS,
                               json_kind, read_json_object)
from .hog_file import check_hog_file

SIZE_FACTOR = 8                   # widths and hidden units: at most 8x the shipped network's
MAX_WEIGHTS_BYTES = 128 << 20     # float16 weights of the largest network allowed, with room to spare
FILTERS = ("0", "1")              # calibration keys: dlib's detector, the masked-face filter
CALIBRATION_RANGE = ((-1.0, 1.0), (-1.0, 1.0), (0.25, 4.0))  # dx, dy (box widths), frame size (box widths)


@dataclass(frozen=True)
class FrontEndFolder:
    """What a checked folder holds: the HOG filter's path, calibrations {filter index: (dx, dy, size)},
    the landmark network's widths, hidden units and float32 state dict, or instead (weights None)
    the OnnxLandmarkNet of its landmarks.onnx."""

    hog_path: Path
    calibration: dict
    widths: tuple
    hidden: int
    weights: dict
    onnx_net: object = None

    def landmark_net(self):
        """The landmark network, ready to predict (PyTorch, or onnxruntime for landmarks.onnx)."""
        if self.onnx_net is not None:
            return self.onnx_net
        from .landmark_net import LandmarkNet

        net = LandmarkNet(self.widths, self.hidden)
        net.load_state_dict(self.weights)
        return net.eval()


def read_front_end(folder):
    """The checked contents of front-end folder `folder` (see module doc), or DataError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"front-end folder {folder} not found; make one with g2d-data train-landmarks")
    config_path = folder / CONFIG_NAME
    doc = read_json_object(config_path)
    hog = doc.get(HOG_CONFIG_KEY)
    if hog is None:
        raise DataError(f"{config_path} holds no masked HOG filter (key {HOG_CONFIG_KEY!r}); {FIX}")
    where = f"{config_path}: {HOG_CONFIG_KEY}"
    if not isinstance(hog, dict):
        raise DataError(f"{where} is a {json_kind(hog)}, not an object; {FIX}")
    hog_path = file_in_folder(folder, hog.get("file"), f"{where}.file")
    calibration = _calibration(hog.get("calibration", {}), f"{where}.calibration")
    widths, hidden = _network(doc, config_path)
    check_hog_file(hog_path)
    if not (folder / WEIGHTS_NAME).exists() and (folder / ONNX_NAME).exists():
        from .landmark_net_onnx import OnnxLandmarkNet

        onnx_net = OnnxLandmarkNet(file_in_folder(folder, ONNX_NAME, "landmark network"))
        return FrontEndFolder(hog_path, calibration, widths, hidden, None, onnx_net)
    weights = read_weights(file_in_folder(folder, WEIGHTS_NAME, "landmark weights"), widths, hidden)
    return FrontEndFolder(hog_path, calibration, widths, hidden, weights)


def read_landmark_weights(folder):
    """(widths, hidden, float32 state dict) of the landmark network in `folder`, checked as
    read_front_end checks them (a folder without front_end.json: the shipped widths)."""
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    doc = read_json_object(config_path) if config_path.exists() else {}
    widths, hidden = _network(doc, config_path)
    return widths, hidden, read_weights(file_in_folder(folder, WEIGHTS_NAME, "landmark weights"), widths, hidden)


def _network(doc, config_path):
    """(widths, hidden) of the landmark network described by config `doc`."""
    trained = doc.get("landmarks", {})
    if not isinstance(trained, dict):
        raise DataError(f"{config_path}: landmarks is a {json_kind(trained)}, not an object; {FIX}")
    widths = _widths(trained.get("widths", list(WIDTHS)), f"{config_path}: landmarks.widths")
    hidden = _count(trained.get("hidden", HIDDEN), 1, HIDDEN * SIZE_FACTOR, f"{config_path}: landmarks.hidden")
    return widths, hidden


def file_in_folder(folder, name, what):
    """folder / name for a plain file name whose file lies in `folder` (a link out of it is refused)."""
    if not isinstance(name, str) or not name:
        raise DataError(f"{what} must be a file name, got {json_kind(name)} {str(name)[:40]!r}; {FIX}")
    if name != os.path.basename(name) or name in (".", "..") or "\\" in name or "\0" in name:
        raise DataError(f"{what} {name[:80]!r} is not a plain file name: the front end reads only files in its "
                        f"folder {folder}; {FIX}")
    path = folder / name
    real_folder = os.path.realpath(folder)
    if os.path.dirname(os.path.realpath(path)) != real_folder:
        raise DataError(f"{what} {path} links out of the folder {folder}; the front end reads only files in it")
    if not path.is_file():
        raise DataError(f"{what} {path} not found; {FIX}")
    return path


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _calibration(table, where):
    if not isinstance(table, dict):
        raise DataError(f"{where} is a {json_kind(table)}, not an object; {FIX}")
    out = {}
    for key, value in table.items():
        if key not in FILTERS:
            raise DataError(f"{where}: key {key[:40]!r} is not a filter index ({', '.join(FILTERS)}); {FIX}")
        ok = isinstance(value, list) and len(value) == 3 and all(_number(v) for v in value) and all(
            lo <= v <= hi for v, (lo, hi) in zip(value, CALIBRATION_RANGE))
        if not ok:
            ranges = ", ".join(f"{lo:g}..{hi:g}" for lo, hi in CALIBRATION_RANGE)
            raise DataError(f"{where}.{key} must be 3 numbers dx, dy, size in {ranges}, got "
                            f"{json.dumps(value)[:80]}; {FIX}")
        out[int(key)] = tuple(float(v) for v in value)
    return out


def _count(value, low, high, where):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DataError(f"{where} must be a whole number in {low}..{high} ({SIZE_FACTOR}x the shipped network's), "
                        f"got {json.dumps(value)[:40]}; {FIX}")
    return value


def _widths(value, where):
    if not isinstance(value, list) or len(value) != len(WIDTHS):
        raise DataError(f"{where} must be {len(WIDTHS)} channel counts, got {json.dumps(value)[:80]}; {FIX}")
    return tuple(_count(w, 1, d * SIZE_FACTOR, f"{where}[{i}]") for i, (w, d) in enumerate(zip(value, WIDTHS)))


def load_landmark_net(folder=None):
    """The landmark network with the weights of ``folder`` (default: the shipped ones), in eval mode;
    the folder is checked first (read_landmark_weights): DataError naming the file."""
    from .landmark_net import LandmarkNet

    widths, hidden, weights = read_landmark_weights(Path(folder) if folder is not None else WEIGHTS_DIR)
    net = LandmarkNet(widths=widths, hidden=hidden)
    net.load_state_dict(weights)
    return net.eval()


def read_weights(path, widths, hidden):
    """The float32 state dict of LandmarkNet(widths, hidden) in `path`: read with weights_only=True,
    its names and shapes those of the network, every value finite; or DataError."""
    import torch

    from ..backbones.checkpoint import unreadable_reason
    from .landmark_net import LandmarkNet

    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise DataError(f"landmark weights {path} are {size} bytes, more than the largest network allowed holds")
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or unsafe files
        raise DataError(f"cannot load landmark weights {path}: {unreadable_reason(path, err)}; {FIX}") from None
    if not isinstance(state, dict):
        raise DataError(f"landmark weights {path} hold a {type(state).__name__}, not a state dict; {FIX}")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in LandmarkNet(widths, hidden).state_dict().items()}
    for key, shape in expected.items():
        value = state.get(key)
        if not torch.is_tensor(value) or tuple(value.shape) != shape:
            got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise DataError(f"landmark weights {path}: {key} is {got}, the network of front_end.json needs "
                            f"{shape}; {FIX}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise DataError(f"landmark weights {path}: unexpected {', '.join(map(str, extra[:3]))}; {FIX}")
    out = {}
    for key, value in state.items():
        value = value.float() if value.is_floating_point() else value
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise DataError(f"landmark weights {path}: {key} holds NaN/inf; {FIX}")
        out[key] = value
    return out

"""Reading a front end's ``front_end.json``: one JSON object of bounded size, or a DataError
naming the file (kept apart from the network and folder modules, which both read it)."""
import json
import os
from pathlib import Path

from ..errors import DataError

WEIGHTS_DIR = Path(__file__).resolve().parent / "front_end_weights"   # the shipped front end
CONFIG_NAME = "front_end.json"
WEIGHTS_NAME = "landmarks.pt"     # the landmark network's weights (PyTorch state dict, float16)
ONNX_NAME = "landmarks.onnx"      # or the network as ONNX (a deployment bundle's front end: no PyTorch)
HOG_CONFIG_KEY = "masked_hog"
WIDTHS = (16, 32, 64, 128)        # the landmark network's channels per stage (front_end.json may say others)
HIDDEN = 128                      # units of its hidden FC layer
MAX_CONFIG_BYTES = 1 << 20
FIX = "re-run g2d-data train-landmarks"


def read_json_object(path):
    """The JSON object in `path` (a dict; at most MAX_CONFIG_BYTES), or DataError."""
    try:
        size = os.path.getsize(path)
        if size > MAX_CONFIG_BYTES:
            raise DataError(f"{path} is {size} bytes, more than a front end's config holds; {FIX}")
        with open(path, encoding="utf-8") as f:
            doc = json.load(f, parse_constant=_no_constant)
    except FileNotFoundError:
        raise DataError(f"{path} not found: not a front-end folder; make one with g2d-data train-landmarks") from None
    except (OSError, ValueError, RecursionError) as err:
        reason = err.strerror if isinstance(err, OSError) else str(err) or type(err).__name__
        raise DataError(f"cannot read the front end's config {path}: {reason[:200]}; {FIX}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path} holds a {json_kind(doc)}, not a JSON object; {FIX}")
    return doc


def _no_constant(name):
    raise ValueError(f"{name} is not a number")


def json_kind(value):
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__)

"""The kit's five-point landmark network: a small CNN that sees a face crop and returns the five
ArcFace points and a face score, masked or not.

The crop ("view") is the ArcFace 112 x 112 frame with a margin of ``MARGIN`` on every side,
resampled to ``INPUT`` x ``INPUT`` pixels: a similarity ``M`` taking photo pixels to the 112 frame
(from a detector box, or from landmarks of an earlier pass) gives the view ``V = A @ M`` where
``A`` takes the 112 frame to view pixels. On a face aligned by its true landmarks the five points
sit on ``ARCFACE_TEMPLATE`` in the frame; the network predicts them in view pixels, and
``view_to_photo`` maps them back. Passes refine: pass k + 1 aligns the view with the landmarks
of pass k (``g2d_front_end.G2DFrontEnd``).

    net = load_landmark_net()                      # front_end_folder.py: the shipped weights, checked
    views, mats = crop_views(photo, frames)        # frames: [N, 2, 3] photo -> 112-frame similarities
    points, score = net.predict(views)             # [N, 5, 2] view pixels, [N] face probability
    photo_points = view_to_photo(points, mats)

Weights are a plain state dict (float16 on disk, float32 in use) read with
``torch.load(weights_only=True)``; the training config is stored beside them (see
``landmark_training.py``).
"""
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .front_end_config import CONFIG_NAME, HIDDEN, HOG_CONFIG_KEY, ONNX_NAME, WEIGHTS_DIR, WEIGHTS_NAME, WIDTHS
from .landmark_views import (INPUT, MARGIN, crop_views, frame_to_view, frames_from_boxes, frames_from_landmarks,
                             template_in_view, view_matrices, view_to_photo)

__all__ = ["CONFIG_NAME", "HIDDEN", "HOG_CONFIG_KEY", "INPUT", "MARGIN", "ONNX_NAME", "WEIGHTS_DIR", "WEIGHTS_NAME",
           "WIDTHS", "LandmarkNet", "crop_views", "export_landmark_onnx", "frame_to_view", "frames_from_boxes",
           "frames_from_landmarks", "read_config", "save_landmark_net", "template_in_view", "update_config",
           "view_matrices", "view_to_photo"]


def _block(cin, cout, stride):
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class LandmarkNet(nn.Module):
    """uint8-range RGB views [N, 3, INPUT, INPUT] -> (points [N, 5, 2] in view pixels, face logit [N]).

    Eight 3x3 conv layers (five of stride 2; channels ``widths``, one per stage) to widths[3] x 3 x 3,
    one hidden FC layer (``hidden``), one FC layer out (10 coordinates + 1 logit); with the default
    widths and hidden 128: 0.59 M parameters, 26 M multiply-adds a view.
    """

    def __init__(self, widths=WIDTHS, hidden=HIDDEN):
        super().__init__()
        w1, w2, w3, w4 = widths
        layers = _block(3, w1, 2) + _block(w1, w2, 2) + _block(w2, w2, 1) + _block(w2, w3, 2) + \
            _block(w3, w3, 1) + _block(w3, w4, 2) + _block(w4, w4, 1) + _block(w4, w4, 2)
        self.features = nn.Sequential(*layers)
        side = INPUT // 32
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(w4 * side * side, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, 11))
        self.register_buffer("template", torch.from_numpy(template_in_view()))

    def forward(self, x):
        out = self.head(self.features((x - 127.5) / 128.0))
        points = self.template + out[:, :10].view(-1, 5, 2) * (INPUT / 4.0)  # offsets from the template
        return points, out[:, 10]

    @torch.no_grad()
    def predict(self, views):
        """uint8 [N, INPUT, INPUT, 3] RGB views -> (points float64 [N, 5, 2] view px, face probability [N])."""
        if not len(views):
            return np.zeros((0, 5, 2)), np.zeros(0)
        x = torch.from_numpy(np.ascontiguousarray(views)).permute(0, 3, 1, 2).float()
        points, logit = self(x)
        return points.double().numpy(), torch.sigmoid(logit).double().numpy()


ONNX_INPUT, ONNX_OUTPUTS = "views", ("points", "logit")


def export_landmark_onnx(net, path, opset=17):
    """Write `net` as ONNX for ``landmark_net_onnx.OnnxLandmarkNet``: input "views" float32
    [batch, 3, INPUT, INPUT] (RGB, 0..255), outputs "points" [batch, 5, 2] (view pixels) and
    "logit" [batch]. Written atomically; returns the path."""
    import inspect
    import io
    import warnings

    import onnx

    from ..fileio import atomic_open, write_errors

    net = net.float().cpu().eval()
    kwargs = dict(input_names=[ONNX_INPUT], output_names=list(ONNX_OUTPUTS), opset_version=int(opset),
                  dynamic_axes={name: {0: "batch"} for name in (ONNX_INPUT,) + ONNX_OUTPUTS})
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    graph = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(2, 3, INPUT, INPUT),), graph, **kwargs)
    proto = onnx.load_from_string(graph.getvalue())
    onnx.checker.check_model(proto)
    with write_errors(path), atomic_open(path) as f:
        f.write(proto.SerializeToString())
    return path


def save_landmark_net(net, folder, config):
    """Write ``folder``/landmarks.pt (float16 state dict) and the config it was trained with
    (``folder``/front_end.json, key "landmarks"), each atomically."""
    from ..fileio import atomic_open

    folder = Path(folder)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    with atomic_open(folder / WEIGHTS_NAME, "wb") as f:
        torch.save(state, f)
    update_config(folder, {"landmarks": config})


def read_config(folder=WEIGHTS_DIR):
    """The front end's config (``front_end.json``, a JSON object): training settings and detector
    calibrations; {} when the folder has none."""
    from .front_end_config import read_json_object

    path = Path(folder) / CONFIG_NAME
    return read_json_object(path) if path.is_file() else {}


def update_config(folder, entries):
    """Merge ``entries`` into ``folder``/front_end.json (atomic)."""
    from ..fileio import atomic_open

    doc = read_config(folder)
    doc.update(entries)
    with atomic_open(Path(folder) / CONFIG_NAME, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")

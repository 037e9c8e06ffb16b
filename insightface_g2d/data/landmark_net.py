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

import cv2
import numpy as np
import torch
from torch import nn

from .align import ARCFACE_TEMPLATE, estimate_similarity

INPUT = 96          # view side in pixels
MARGIN = 0.2        # view margin around the 112 frame, as a share of the frame side
WEIGHTS_DIR = Path(__file__).resolve().parent / "front_end_weights"
WEIGHTS_NAME = "landmarks.pt"
CONFIG_NAME = "front_end.json"
HOG_CONFIG_KEY = "masked_hog"
WIDTHS = (16, 32, 64, 128)  # channels of the network's four stages
HIDDEN = 128                # units of its hidden FC layer


def frame_to_view():
    """3x3 matrix taking 112-frame coordinates to view pixels."""
    s = INPUT / (112.0 * (1.0 + 2.0 * MARGIN))
    t = s * 112.0 * MARGIN
    return np.array([[s, 0.0, t], [0.0, s, t], [0.0, 0.0, 1.0]])


def template_in_view():
    """The ArcFace template in view pixels: float32 [5, 2]."""
    a = frame_to_view()
    return (ARCFACE_TEMPLATE.astype(np.float64) @ a[:2, :2].T + a[:2, 2]).astype(np.float32)


def _h(m):
    return np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])


def view_matrices(frames):
    """[N, 2, 3] photo -> 112-frame similarities -> [N, 2, 3] photo -> view pixels."""
    a = frame_to_view()
    return np.stack([(a @ _h(f))[:2] for f in np.asarray(frames, np.float64).reshape(-1, 2, 3)])


def crop_views(img, frames, border=cv2.BORDER_REPLICATE):
    """The views of one photo: (uint8 [N, INPUT, INPUT, 3], photo -> view matrices [N, 2, 3]).

    A view that shrinks the photo more than 2x is cut from a copy shrunk first (INTER_AREA, integer
    factor), so large faces are averaged rather than aliased."""
    mats = view_matrices(frames)
    views = np.zeros((len(mats), INPUT, INPUT, 3), np.uint8)
    shrunk = {1: img}
    for i, m in enumerate(mats):
        f = max(1, int(_shrink(m) / 1.5))
        if f not in shrunk:
            shrunk[f] = cv2.resize(img, (max(1, round(img.shape[1] / f)), max(1, round(img.shape[0] / f))),
                                   interpolation=cv2.INTER_AREA)
        small = shrunk[f]
        sx, sy = img.shape[1] / small.shape[1], img.shape[0] / small.shape[0]
        # small pixel (u, v) is photo pixel ((u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5)
        to_photo = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        views[i] = cv2.warpAffine(small, (_h(m) @ to_photo)[:2], (INPUT, INPUT), flags=cv2.INTER_LINEAR,
                                  borderMode=border)
    return views, mats


def _shrink(m):
    """How many photo pixels one view pixel spans (the similarity's inverse scale)."""
    return 1.0 / max(float(np.sqrt(abs(np.linalg.det(np.asarray(m)[:2, :2])))), 1e-9)


def view_to_photo(points, mats):
    """Points [N, K, 2] in view pixels -> photo pixels, inverting each [2, 3] matrix of ``mats``."""
    out = []
    for p, m in zip(np.asarray(points, np.float64), np.asarray(mats, np.float64)):
        inv = np.linalg.inv(_h(m))
        out.append(p @ inv[:2, :2].T + inv[:2, 2])
    return np.asarray(out, np.float64).reshape(np.shape(points))


def frames_from_landmarks(landmarks):
    """[N, 5, 2] photo landmarks -> [N, 2, 3] photo -> 112-frame similarities (as align_face's)."""
    return np.stack([estimate_similarity(p, ARCFACE_TEMPLATE) for p in np.asarray(landmarks, np.float64)]) \
        if len(landmarks) else np.zeros((0, 2, 3))


def frames_from_boxes(boxes, calibration):
    """[N, 4] boxes (x0, y0, x1, y1) -> [N, 2, 3] upright photo -> 112-frame similarities.

    calibration (dx, dy, size): the 112 frame's centre lies at box centre + (dx, dy) x box width,
    and the frame spans size x box width photo pixels (measured per detector on clean faces).
    """
    dx, dy, size = (float(v) for v in calibration)
    out = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        w = max(x1 - x0, 1.0)
        cx, cy = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * w
        s = 112.0 / (size * w)
        out.append([[s, 0.0, 56.0 - s * cx], [0.0, s, 56.0 - s * cy]])
    return np.asarray(out, np.float64).reshape(-1, 2, 3)


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

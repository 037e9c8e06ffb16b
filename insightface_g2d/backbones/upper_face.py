"""Networks that see only the upper face: `<network>+upper<R>` is `<network>` whose input has every
row from R down (rows of the aligned 112 x 112 ArcFace frame) replaced by flat grey, the mask's
region on a masked face and the same region on a clean one, so a masked and an unmasked photo of
a person reach the network alike whatever the mask looks like.

    get_model("g2d_dlib+upper66")      # dlib's ResNet cut for G2D, seeing rows 0-65 (eyes at 51.7,
                                       # nose tip at 71.7)

The cut is a forward pre-hook on the network's `encoder` (G2D networks; the stages feed it
directly) or on the network itself, so the state dict is the network's: checkpoints, `init`
weights and teacher geometry are unchanged. A network that makes its own input from a 112 crop
(dlib's 150 x 150 chip: `input_warp`) is cut at the row the crop's row R maps to in that input.
It is part of the traced graph, so ONNX exports and bundles cut alike.
"""
import math
import re

import torch

from ..errors import ConfigError

SUFFIX = re.compile(r"^(?P<base>.+)\+upper(?P<row>\d+)$")
CROP = 112


def parse_upper_name(name):
    """'g2d_dlib+upper66' -> ('g2d_dlib', 66); None when `name` has no +upper<R> suffix."""
    match = SUFFIX.match(name) if isinstance(name, str) else None
    if match is None:
        return None
    row = int(match.group("row"))
    if not 1 <= row < CROP:
        raise ConfigError(f"network {name!r}: the upper face ends at a row between 1 and {CROP - 1} of the 112 frame, "
                          f"not {row}")
    return match.group("base"), row


class LowerFaceCut:
    """Forward pre-hook: rows >= row (in 112-frame rows) of the input set to 0 (grey in [-1, 1])."""

    def __init__(self, row, warp=None):
        self.row, self.warp = int(row), warp

    def row_in(self, size):
        """The first row cut of an input `size` pixels high: R itself for 112 crops; for the warped
        input the first row whose bilinear sample reaches below crop row R - 1 (so a crop's rows
        from R down never reach the network, whichever way its input was made)."""
        if size == CROP or self.warp is None or size != self.warp["size"]:
            return round(self.row * size / CROP)
        (_, _, _), (_, scale, shift) = self.warp["matrix"]
        return int(math.floor(scale * (self.row - 1) + shift)) + 1

    def __call__(self, module, args):
        x = args[0]
        row = min(max(self.row_in(int(x.shape[-2])), 0), int(x.shape[-2]))
        upper, lower = x[..., :row, :], x[..., row:, :]
        return (torch.cat([upper, torch.zeros_like(lower)], dim=-2),) + tuple(args[1:])


def add_lower_face_cut(model, row):
    """Attach the cut to `model` (see module doc); returns the model."""
    warp = next((m.input_warp for m in model.modules() if hasattr(m, "input_warp")), None)
    target = getattr(model, "encoder", None)
    target = model if target is None else target
    target.register_forward_pre_hook(LowerFaceCut(row, warp))
    model.upper_face_rows = int(row)
    return model

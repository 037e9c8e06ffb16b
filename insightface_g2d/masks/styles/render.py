"""Rendering a *group*: K random templates of one (style, wear position), vectorised over K.

``render_group`` returns colour-neutral layers (see style.MaskStyle for their meaning) covering
output pixel rows ``row0 ..`` and columns ``col0 ..`` of the aligned frame, clipped to their
ranges; masks.py encodes them as a uint8 template bank.
"""
import numpy as np

from .drawing import POSITIONS, grid_for

# Highest shade value the uint8 encoding in masks.py represents (highlights above 1).
SHADE_MAX = 1.25

# Templates rendered per call: [16, ~80, 136] float32 temporaries stay in the L2 cache, which
# makes the element-wise maths several times faster than on all K templates at once.
_CHUNK = 16


def render_group(style, position, k, size, pad, rng):
    """Render ``k`` random templates of ``style`` (a MaskStyle) worn at ``position``.

    Returns dict(alpha, shade, level, tex, row0, col0): array element [., i, j] is pixel
    (row0 + i, col0 + j) of the aligned frame.
    """
    if position not in POSITIONS:
        raise ValueError(f"unknown wear position {position!r}; choose from {POSITIONS}")
    grid = grid_for(position, size, pad)
    parts = []
    for start in range(0, k, _CHUNK):
        parts.append(style.render(grid, min(_CHUNK, k - start), rng, position))
    alpha = np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False)
    shade = np.concatenate([np.broadcast_to(p[1], p[0].shape) for p in parts]).astype(np.float32, copy=False)
    level = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    tex = None if parts[0][3] is None else np.concatenate([p[3] for p in parts])
    for arr, hi in ((alpha, 1.0), (shade, SHADE_MAX), (level, 1.0), (tex, 1.0)):
        if arr is not None:
            np.maximum(arr, np.float32(0.0), out=arr)
            np.minimum(arr, np.float32(hi), out=arr)
    return dict(alpha=alpha, shade=shade, level=level, tex=tex, row0=grid.row0, col0=grid.col0)

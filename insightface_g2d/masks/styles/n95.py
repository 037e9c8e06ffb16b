"""N95 respirator: moulded cup with a rolled rim, nose clip, optional valve and head straps."""
import numpy as np

from .drawing import bump, coverage, cup, ear_loops, edge_band, grain, smoothstep, uniform
from .style import MaskStyle

PALETTE = ((240, 238, 232), (240, 238, 232), (228, 222, 206), (190, 191, 194), (50, 50, 54),
           (182, 204, 224))


def render(grid, k, rng, position):
    g = cup(grid, k, rng, position)
    alpha = coverage(g["sd"], grid, uniform(rng, k, 1.0, 1.6))
    u, w = g["u"], g["w"]
    z = np.sqrt(np.maximum(1.0 - g["r2"], 0.0))
    lx, ly = uniform(rng, k, -0.5, 0.5), uniform(rng, k, -0.45, -0.1)
    lz = np.sqrt(1.0 - lx * lx - ly * ly)
    nx, ny = u * 0.75, w * 0.75
    norm = np.sqrt(nx * nx + ny * ny + z * z) + 1e-6
    lam = np.maximum((nx * lx + ny * ly + z * lz) / norm, 0.0)
    amb = uniform(rng, k, 0.35, 0.5)
    shade = amb + (1.0 - amb) * 1.12 * lam
    # moulded rim: a darker rolled edge 1.5-2.5 px wide
    edge_px = g["sd"] * grid.s
    shade = shade * (1.0 - 0.16 * edge_band(edge_px, uniform(rng, k, 1.5, 2.5)))
    # metal nose clip: a thin bright strip below the top edge
    y, x = grid.y, grid.x
    clip_y = g["y_tc"] + 2.5
    clip = bump((y - clip_y) * grid.s, 1.6) * (np.abs(x - g["cx"]) < uniform(rng, k, 6.0, 10.0))
    shade = shade * (1.0 + 0.18 * clip)
    # exhalation valve on half of the masks: a raised disc with a dark ring
    has_valve = (rng.random((k, 1, 1)) < 0.5).astype(np.float32)
    sign = np.where(rng.random((k, 1, 1)) < 0.5, -1.0, 1.0).astype(np.float32)
    vx = g["cx"] + sign * uniform(rng, k, 12.0, 17.0)
    vy = g["cy"] + uniform(rng, k, 8.0, 14.0)
    vr = uniform(rng, k, 6.0, 8.5)
    dist = np.sqrt((x - vx) ** 2 + (y - vy) ** 2) - vr  # [K,h,w], 112 units
    disc = smoothstep(0.5 - dist * grid.s)
    ring = bump(dist * grid.s, 1.6)
    shade = shade * (1.0 + has_valve * (0.08 * disc - 0.35 * ring))
    shade = shade * (1.0 + grain(grid, k, rng, 1.0, 0.012))
    # head straps: two lines leaving the cup sideways
    b_bot = g["b_bot"]
    g2 = dict(cx=g["cx"], hw=g["a"] * 0.97, y_ts=g["cy"] - 2.0, y_bs=g["cy"] + 14.0, tilt=g["tilt"],
              inset=1.0 - np.sqrt(np.maximum(1.0 - (14.0 / b_bot) ** 2, 0.0)))
    ear_loops(grid, k, rng, g2, shade, alpha)
    return alpha, shade, None, None


STYLE = MaskStyle("n95", render, PALETTE)

"""Cloth mask: contoured fabric with wrinkles, an optional centre seam and hem.

``cloth_shape`` and ``cloth_shading`` are shared with the patterned style.
"""
import math

import numpy as np

from .drawing import bump, coverage, cylinder, ear_loops, grain, sheet, uniform
from .style import MaskStyle

PALETTE = ((35, 35, 38), (40, 50, 86), (70, 72, 78), (140, 141, 146), (206, 186, 156),
           (76, 101, 141), (122, 32, 46), (182, 46, 52), (100, 106, 62), (232, 231, 228),
           (222, 152, 172), (112, 82, 62), (42, 122, 126), (202, 162, 62))


def cloth_shape(grid, k, rng, position):
    return sheet(grid, k, rng, position, hw=(39.0, 44.0), p_t=(1.7, 2.4), d_ts=(6.0, 12.0),
                 p_b=(1.8, 2.6), inset=(0.06, 0.16))


def cloth_shading(grid, k, rng, g):
    u, v = g["u"], g["v"]
    shade = cylinder(u, rng, k, ambient=(0.5, 0.62)) * (1.0 - uniform(rng, k, 0.1, 0.25) * v * v)
    # soft wrinkles: two low-frequency ripples across the fabric
    for _ in range(2):
        f, ph, tilt = uniform(rng, k, 2.0, 4.0), uniform(rng, k, 0.0, 6.3), uniform(rng, k, -0.8, 0.8)
        shade = shade * (1.0 + 0.035 * np.sin(2 * math.pi * f * (v + tilt * u) + ph))
    # contoured masks have a vertical centre seam
    has_seam = (rng.random((k, 1, 1)) < 0.6).astype(np.float32)
    seam = bump(u * (g["hw"] * grid.s), 1.4)
    shade = shade * (1.0 - 0.25 * has_seam * seam)
    # a stitched hem around the edge on some masks
    has_hem = (rng.random((k, 1, 1)) < 0.5).astype(np.float32)
    edge_px = g["sd"] * grid.s
    stitch = bump(edge_px - 2.0, 0.9) * (np.cos(grid.x * 2.2) > 0)
    shade = shade * (1.0 - has_hem * 0.15 * stitch)
    # woven texture
    shade = shade * (1.0 + grain(grid, k, rng, 0.5, 0.016))
    return shade


def render(grid, k, rng, position):
    g = cloth_shape(grid, k, rng, position)
    alpha = coverage(g["sd"], grid, uniform(rng, k, 1.1, 2.0))
    shade = cloth_shading(grid, k, rng, g)
    ear_loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, None, None


STYLE = MaskStyle("cloth", render, PALETTE)

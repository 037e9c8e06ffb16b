"""KN95: two panels folded at a vertical crease into a fish shape, heat-welded border."""
import math

import numpy as np

from .drawing import bump, coverage, cylinder, ear_loops, edge_band, grain, sheet, uniform
from .style import MaskStyle

PALETTE = ((242, 242, 242), (242, 242, 242), (42, 42, 45), (150, 151, 156), (232, 176, 192),
           (172, 202, 232), (52, 62, 102))


def render(grid, k, rng, position):
    g = sheet(grid, k, rng, position, hw=(41.0, 46.0), p_t=(1.5, 2.2), d_ts=None,
              p_b=(1.15, 1.5), inset=(0.0, 0.0), pointed=True, d_side=(14.0, 20.0), chin=-5.0)
    alpha = coverage(g["sd"], grid, uniform(rng, k, 1.0, 1.6))
    u, v = g["u"], g["v"]
    shade = cylinder(u, rng, k, ambient=(0.55, 0.7))
    # two panels folded at the vertical centre line: one faces the light more than the other
    side = np.tanh(u * 12.0)
    shade = shade * (1.0 + uniform(rng, k, -0.1, 0.1) * side) * (1.0 - uniform(rng, k, 0.05, 0.15) * v * v)
    crease = bump(u * (g["hw"] * grid.s), 1.3)
    shade = shade * (1.0 - 0.22 * crease)
    # heat-welded border with an embossed dotted line
    edge_px = g["sd"] * grid.s
    weld = edge_band(edge_px, uniform(rng, k, 1.8, 2.8))
    dots = 0.5 + 0.5 * np.cos(grid.x * (2 * math.pi / 1.8)) * np.cos(grid.y * (2 * math.pi / 1.8))
    shade = shade * (1.0 - weld * (0.05 + 0.08 * dots))
    shade = shade * (1.0 + grain(grid, k, rng, 0.8, 0.01))
    ear_loops(grid, k, rng, g, shade, alpha, pointed=True)
    return alpha, shade, None, None


STYLE = MaskStyle("kn95", render, PALETTE)

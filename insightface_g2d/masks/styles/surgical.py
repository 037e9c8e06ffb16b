"""Surgical mask: pleated flat sheet with bound edges and ear loops."""
import numpy as np

from .drawing import bump, coverage, cylinder, ear_loops, edge_band, grain, sheet, smoothstep, uniform
from .style import MaskStyle

PALETTE = ((150, 198, 232), (112, 168, 222), (150, 198, 232), (236, 238, 240), (236, 238, 240),
           (55, 56, 62), (140, 205, 188), (238, 182, 200), (198, 200, 206))


def render(grid, k, rng, position):
    g = sheet(grid, k, rng, position, hw=(40.0, 45.0), p_t=(1.2, 1.8), d_ts=(3.0, 9.0),
              p_b=(1.8, 2.8), inset=(0.08, 0.2))
    alpha = coverage(g["sd"], grid, uniform(rng, k, 1.0, 1.8))
    v = g["v"]
    shade = cylinder(g["u"], rng, k) * (1.0 - uniform(rng, k, 0.08, 0.22) * v * v)
    # three pleats: each band darkens toward the fold below it; at each fold a thin dark crease
    # just below the fold line and a highlight just above it (signed distance to the nearest fold
    # keeps both anti-aliased)
    va, vb = uniform(rng, k, 0.16, 0.24), uniform(rng, k, 0.74, 0.84)
    q = (v - va) * (3.0 / (vb - va))
    inside = (q > -0.3) & (q < 3.3)
    band_px = (vb - va) / 3.0 * g["span"] * grid.s      # [K,1,w]
    near = np.rint(q)
    ds = (q - near) * band_px                          # px from the nearest fold, + below it
    saw = q - np.floor(q) - 0.5
    relief = (-0.035 * saw * smoothstep(np.abs(ds) * 0.8)
              - 0.24 * bump(ds - 0.5, 1.5)
              + 0.09 * bump(ds + 1.3, 1.4))
    relief *= inside
    shade = shade * (1.0 + relief)
    # bound top and bottom strips with a stitch line
    top_px, bot_px = g["sd_t"] * grid.s, g["sd_b"] * grid.s
    strip = edge_band(top_px, 2.2) + edge_band(bot_px, 2.0)
    shade = shade * (1.0 + 0.05 * strip - 0.10 * bump(top_px - 2.6, 1.1))
    shade = shade * (1.0 + grain(grid, k, rng, 0.9, 0.012))
    ear_loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, None, None


STYLE = MaskStyle("surgical", render, PALETTE)

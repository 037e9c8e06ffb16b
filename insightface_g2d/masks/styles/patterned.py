"""Patterned cloth mask: the cloth shape and shading with a two-colour pattern
(stripes, dots, gingham, chevrons, camouflage) drawn on the fabric's own coordinates."""
import math

import cv2
import numpy as np

from .cloth import PALETTE, cloth_shading, cloth_shape
from .drawing import coverage, ear_loops, smoothstep, uniform
from .style import MaskStyle


def pattern_level(grid, k, rng, g):
    """Pattern level in [0, 1], drawn on the fabric's own coordinates so it follows the curve."""
    su = np.arcsin(g["u"] * 0.95) * g["hw"]             # [K,1,w] arc length across, 112 units
    sv = g["v"] * g["span"]                              # [K,h,w] length down
    kind = rng.integers(0, 5, size=k)
    out = np.empty((k, grid.h, grid.w), np.float32)
    aa = grid.s
    for i in range(k):
        x, y = su[i], sv[i]
        if kind[i] == 0:  # stripes at a random angle
            ang = rng.uniform(-0.8, 0.8) + (math.pi / 2 if rng.random() < 0.3 else 0.0)
            period = rng.uniform(5.0, 10.0)
            t = (x * math.sin(ang) + y * math.cos(ang)) / period
            tri = np.abs(t - np.floor(t) - 0.5) * period   # distance to stripe centre
            lvl = smoothstep((rng.uniform(0.2, 0.35) * period - tri) * aa + 0.5)
        elif kind[i] == 1:  # polka dots on a staggered grid
            period = rng.uniform(6.0, 11.0)
            rad = period * rng.uniform(0.18, 0.3)
            row = np.floor(y / period)
            xs = x + 0.5 * period * (row % 2)
            fx = xs / period - np.floor(xs / period) - 0.5
            fy = y / period - row - 0.5
            dist = np.sqrt(fx * fx + fy * fy) * period
            lvl = smoothstep((rad - dist) * aa + 0.5)
        elif kind[i] == 2:  # gingham checks: two crossing stripe sets give three tones
            period = rng.uniform(6.0, 10.0)
            sx = smoothstep((period / 4 - np.abs(x / period - np.floor(x / period) - 0.5) * period) * aa + 0.5)
            sy = smoothstep((period / 4 - np.abs(y / period - np.floor(y / period) - 0.5) * period) * aa + 0.5)
            lvl = 0.5 * (sx + sy)
        elif kind[i] == 3:  # chevrons
            period = rng.uniform(6.0, 10.0)
            t = (y + np.abs(((x / period) % 2.0) - 1.0) * period * 0.8) / period
            tri = np.abs(t - np.floor(t) - 0.5) * period
            lvl = smoothstep((period * 0.25 - tri) * aa + 0.5)
        else:  # camouflage: thresholded smooth noise, three tones
            n = rng.standard_normal((grid.h // 4 + 3, grid.w // 4 + 3)).astype(np.float32)
            n = cv2.resize(cv2.GaussianBlur(n, (0, 0), 1.0), (grid.w, grid.h), interpolation=cv2.INTER_CUBIC)
            n /= n.std() + 1e-6
            lvl = 0.5 * smoothstep(n * 3.0 + 1.0) + 0.5 * smoothstep(n * 3.0 - 1.5)
        out[i] = np.broadcast_to(lvl, (grid.h, grid.w))
    return out


def render(grid, k, rng, position):
    g = cloth_shape(grid, k, rng, position)
    alpha = coverage(g["sd"], grid, uniform(rng, k, 1.1, 2.0))
    shade = cloth_shading(grid, k, rng, g)
    level = pattern_level(grid, k, rng, g)
    level *= alpha > 0.0  # loops outside the fabric take the first colour, not the pattern
    ear_loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, level, None


STYLE = MaskStyle("patterned", render, PALETTE, kind="pattern")

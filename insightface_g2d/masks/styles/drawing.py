"""Drawing primitives shared by the mask styles: the render grid, outlines, shading, ear loops.

Geometry is expressed in 112-pixel template units of the aligned ArcFace frame (landmarks: eyes
y~51.6, nose tip y~71.7, mouth corners y~92.3, chin ~115) and scaled to the crop size. The grid
of a wear position covers the lower face of the crop, ``pad`` pixels more on every side (the
synthesizer shifts templates by up to ``pad`` pixels), and beyond the crop whatever a mask needs
to be complete -- the part under the chin and the ear loops.

Geometry bounds per wear position (112 units, before the +-pad jitter; the top edge is the
highest point of the mask, at the nose bridge):
    high    top edge 57.0-60.0   (just under the lower eyelids, ~56; eye centres 51.6)
    normal  top edge 60.5-65.0   (half-way down the nose bridge; covers nose tip to chin)
    low     top edge 76.0-81.0   (under the nose tip 71.7: nose uncovered)

A style's renderer draws K templates at once: arrays are [K, h, w] (or broadcastable
[K, 1, w] / [K, h, 1]), per-template random parameters [K, 1, 1] from ``uniform``.
"""
import math

import cv2
import numpy as np

POSITIONS = ("normal", "high", "low")

# (low, high) uniform ranges in 112-pixel units.
POSITION_GEOMETRY = {
    #          top centre      bottom centre   bottom at the sides
    "high": dict(y_tc=(57.0, 60.0), y_bc=(106.0, 114.0), y_bs=(86.0, 94.0)),
    "normal": dict(y_tc=(60.5, 65.0), y_bc=(114.0, 124.0), y_bs=(94.0, 102.0)),
    "low": dict(y_tc=(76.0, 81.0), y_bc=(122.0, 132.0), y_bs=(104.0, 112.0)),
}
# The render grid of a position starts at this row (112 units), which keeps the per-pixel work
# to the lower face; the position's geometry stays well below it (tests check every template).
FIRST_ROW_112 = {"high": 48.0, "normal": 53.0, "low": 69.0}
# Rows below the crop that the lowest mask of a position can reach (under the chin), and
# columns beside it that ear loops reach (they end 2-8 units outside the crop, near the ears).
BELOW_112 = {"high": 8.0, "normal": 18.0, "low": 26.0}
SIDE_112 = 10.0
TILT = 0.05  # largest in-plane rotation of a mask, radians (~3 degrees)


def uniform(rng, k, lo, hi):
    """K uniform draws in [lo, hi) as float32 [K, 1, 1] (one parameter per template)."""
    return rng.uniform(lo, hi, size=(k, 1, 1)).astype(np.float32)


def smoothstep(t):
    """3t^2 - 2t^3 on t clipped to [0, 1] (modifies a temporary ``t`` in place)."""
    t = np.maximum(t, np.float32(0.0))
    np.minimum(t, np.float32(1.0), out=t)
    return t * t * (3.0 - 2.0 * t)


def bump(d, width):
    """Smooth bump of half-width ``width``: 1 at d = 0, 0 for |d| >= width (cheaper than exp)."""
    t = d * (1.0 / width)
    t = 1.0 - t * t
    np.maximum(t, np.float32(0.0), out=t)
    return t * t



class Grid:
    """Pixel-centre coordinates of the render grid, in 112-pixel units."""

    def __init__(self, size, pad, first_row_112, below_112):
        self.size, self.pad = size, pad
        self.s = size / 112.0
        self.row0 = int(math.floor(first_row_112 * self.s)) - pad
        self.col0 = -pad - int(math.ceil(SIDE_112 * self.s))
        rows = np.arange(self.row0, size + pad + int(math.ceil(below_112 * self.s)), dtype=np.float32)
        cols = np.arange(self.col0, size - self.col0, dtype=np.float32)
        self.h, self.w = rows.size, cols.size
        self.y = (rows / self.s)[None, :, None]  # [1, h, 1]
        self.x = (cols / self.s)[None, None, :]  # [1, 1, w]


def grid_for(position, size, pad):
    """The render grid of one wear position at crop size ``size`` with jitter ``pad``."""
    return Grid(size, pad, FIRST_ROW_112[position], BELOW_112[position])


def sheet(grid, k, rng, position, *, hw, p_t, d_ts, p_b, inset, pointed=False, d_side=None, chin=0.0):
    """Flat-sheet outline (surgical / cloth / kn95 family) and its surface coordinates.

    Top edge  y_top(x) = y_tc + (y_ts - y_tc) |u|^p_t   (peak over the nose bridge)
    Bottom    y_bot(x) = y_bc - (y_bc - y_bs) |u|^p_b   (under the chin)
    Sides     |x - cx| <= hw (1 - inset * t(y)): vertical edges drawn in toward the jaw.
    ``pointed``: kn95's fish shape, top and bottom curves meet at the side tips.
    ``chin``: offset of the bottom centre from the position's range (kn95's tip sits higher).
    Returns dict with sd (signed distance to the outline, 112 units, >0 inside), u [K,1,w]
    in [-1, 1] across, v [K,h,w] in [0, 1] top to bottom, and the curve parameters.
    """
    geo = POSITION_GEOMETRY[position]
    cx = uniform(rng, k, 54.5, 57.5)
    hw = uniform(rng, k, *hw)
    y_tc = uniform(rng, k, *geo["y_tc"])
    if pointed:
        y_ts = y_tc + uniform(rng, k, *d_side)
        y_bs = y_ts
    else:
        y_ts = y_tc + uniform(rng, k, *d_ts)
        y_bs = np.maximum(uniform(rng, k, *geo["y_bs"]), y_ts + 14.0)
    y_bc = uniform(rng, k, *geo["y_bc"]) + chin
    p_t = uniform(rng, k, *p_t)
    p_b = uniform(rng, k, *p_b)
    inset = uniform(rng, k, *inset)

    tilt = uniform(rng, k, -TILT, TILT)                   # radians; rotation by a vertical shear

    dx = grid.x - cx                                   # [K,1,w]
    au = np.minimum(np.abs(dx) / hw, 1.6)
    sgn = np.sign(dx)
    shear = tilt * dx                                  # [K,1,w] row offset of the rotated mask
    d_top, d_bot = y_ts - y_tc, y_bc - y_bs
    au_t = au ** p_t
    au_b = au ** p_b
    y_top = y_tc + d_top * au_t + shear                # [K,1,w]
    y_bot = y_bc - d_bot * au_b + shear
    slope_t = sgn * d_top * p_t * au_t / np.maximum(au, 1e-3) / hw + tilt
    slope_b = -sgn * d_bot * p_b * au_b / np.maximum(au, 1e-3) / hw + tilt
    inv_t = 1.0 / np.sqrt(1.0 + slope_t * slope_t)
    inv_b = 1.0 / np.sqrt(1.0 + slope_b * slope_b)
    y = grid.y
    sd_t = (y - y_top) * inv_t                         # [K,h,w]
    sd_b = (y_bot - y) * inv_b
    sd = np.minimum(sd_t, sd_b)
    if pointed:
        np.minimum(sd, hw - np.abs(dx), out=sd)
    else:
        t = (y - (y_ts + shear)) * (1.0 / (y_bs - y_ts))  # [K,h,w]
        np.maximum(t, np.float32(0.0), out=t)
        np.minimum(t, np.float32(1.0), out=t)
        np.minimum(sd, hw - np.abs(dx) - (hw * inset) * t, out=sd)
    span = np.maximum(y_bot - y_top, 1.0)
    v = (y - y_top) * (1.0 / span)
    np.maximum(v, np.float32(0.0), out=v)
    np.minimum(v, np.float32(1.0), out=v)
    u = np.clip(dx / hw, -1.0, 1.0)
    return dict(sd=sd, sd_t=sd_t, sd_b=sd_b, u=u, v=v, cx=cx, hw=hw, y_tc=y_tc, y_ts=y_ts,
                y_bs=y_bs, y_bc=y_bc, inset=inset, y_top=y_top, span=span, tilt=tilt)


def cup(grid, k, rng, position):
    """N95 cup: an ellipse, flatter above its centre than below, sitting over nose and chin."""
    geo = POSITION_GEOMETRY[position]
    cx = uniform(rng, k, 54.5, 57.5)
    a = uniform(rng, k, 35.0, 40.0)
    y_tc = uniform(rng, k, *geo["y_tc"]) + 0.5
    b_top = uniform(rng, k, 19.0, 25.0)
    cy = y_tc + b_top
    b_bot = uniform(rng, k, *geo["y_bc"]) + 2.0 - cy
    tilt = uniform(rng, k, -TILT, TILT)
    dx = grid.x - cx                                   # [K,1,w]
    dy = (grid.y - cy) - tilt * dx                     # [K,h,w]
    u = dx / a
    upper = dy < 0
    inv_b = upper * (1.0 / b_top - 1.0 / b_bot) + 1.0 / b_bot
    w = dy * inv_b
    ga = u / a
    gb = w * inv_b
    r2 = u * u + w * w                                 # [K,h,w]
    r = np.sqrt(r2)
    grad = np.sqrt(ga * ga + gb * gb) + 1e-6
    sd = (1.0 - r) * r / grad
    return dict(sd=sd, u=u, w=w, r2=r2, cx=cx, a=a, cy=cy, y_tc=y_tc, b_top=b_top, b_bot=b_bot,
                tilt=tilt)


def coverage(sd, grid, feather):
    """Feathered coverage from a signed distance (112 units); ``feather`` [K,1,1] in output px."""
    return smoothstep(0.5 + sd * (grid.s / feather))


def edge_band(dist_px, width_px):
    """1 on a band of ``width_px`` output pixels just inside an edge, smooth fall-off."""
    return 1.0 - smoothstep((dist_px - width_px) / 1.2 + 0.5)


def cylinder(u, rng, k, ambient=(0.5, 0.65)):
    """Lambert shading of a surface wrapping around the face; u [K,1,w] -> [K,1,w]."""
    amb = uniform(rng, k, *ambient)
    light = uniform(rng, k, -0.45, 0.45)
    angle = np.arcsin(np.clip(u * 0.92, -1.0, 1.0))
    return amb + (1.0 - amb) * np.maximum(np.cos(angle - light), 0.0)


def grain(grid, k, rng, sigma, strength):
    """Fabric grain: one smoothed noise field per group, a random crop of it per template."""
    big = rng.standard_normal((grid.h + 16, grid.w + 16), dtype=np.float32)
    big = cv2.GaussianBlur(big, (0, 0), sigma)
    big *= strength / (big.std() + 1e-6)
    oy = rng.integers(0, 17, size=k)
    ox = rng.integers(0, 17, size=k)
    return np.stack([big[y:y + grid.h, x:x + grid.w] for y, x in zip(oy, ox)])


def ear_loops(grid, k, rng, g, shade, alpha, *, pointed=False):
    """Ear loops: thin lines from the mask's side corners out to the crop edge (toward the ears).

    Drawn with OpenCV's anti-aliased lines (sub-pixel endpoints via ``shift``) on 8-bit layers.
    Loop ends are kept at rows >= 60 (112 units) so loops never reach the eye band.
    Modifies shade and alpha [K,h,w] in place.
    """
    s, scale = grid.s, 16
    canvas = np.zeros((k, grid.h, grid.w), np.uint8)
    thick = max(1, int(round(s)))
    show = rng.random(k) >= 0.2  # some photos show no loop (hair, profile, cropped)
    rise = rng.uniform(1.0, 5.0, size=(k, 2))
    drop = rng.uniform(12.0, 22.0, size=(k, 2))
    ear = rng.uniform(2.0, 8.0, size=(k, 2))  # how far outside the crop the loops end
    # loops end no higher than row 60, nor above the rows the bank keeps empty for the jitter
    y_min = max(60.0, (grid.row0 + 3 * grid.pad) / s + 1.0)

    def px(x, y):
        return (int(round((x * s - grid.col0) * scale)), int(round((y * s - grid.row0) * scale)))

    for i in np.flatnonzero(show):
        cx, hw = float(g["cx"][i, 0, 0]), float(g["hw"][i, 0, 0])
        y_ts, y_bs = float(g["y_ts"][i, 0, 0]), float(g["y_bs"][i, 0, 0])
        tilt = float(g["tilt"][i, 0, 0])
        inset = 0.0 if pointed else float(g["inset"][i, 0, 0])
        layer = canvas[i]  # a contiguous view: OpenCV draws into it in place
        for j, side in enumerate((-1.0, 1.0)):
            x_edge = -ear[i, j] if side < 0 else 112.0 + ear[i, j]
            x0 = cx + side * (hw - 0.8)
            y0 = y_ts + 1.5 + tilt * side * hw
            cv2.line(layer, px(x0, y0), px(x_edge, max(y_min, y0 - rise[i, j])), 255, thick,
                     cv2.LINE_AA, shift=4)
            if not pointed:
                x1 = cx + side * (hw * (1.0 - inset) - 0.8)
                y1 = y_bs - 1.5 + tilt * side * hw
                cv2.line(layer, px(x1, y1), px(x_edge, max(y_min, y1 - drop[i, j])), 255, thick,
                         cv2.LINE_AA, shift=4)
    a_loop = canvas.astype(np.float32) * np.float32(1.0 / 255.0)
    a_loop *= 1.0 - alpha                        # the part of the loop outside the mask
    shade += (0.82 - shade) * a_loop
    alpha += a_loop

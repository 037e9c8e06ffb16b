"""Procedural face-mask templates in the aligned ArcFace frame (the renderers behind masks.py).

A *group* is one (style, wear position): ``render_group`` draws K random mask geometries of it
at once, vectorised over K, and returns colour-neutral layers:

    alpha  float32 [K, h, w]     coverage in [0, 1], feathered (anti-aliased) edges
    shade  float32 [K, h, w]     lighting/relief factor (pleats, folds, dome, grain), ~[0.4, 1.25]
    level  float32 [K, h, w]     pattern level in [0, 1] (patterned style only, else None)
    tex    float32 [K, h, w, 3]  RGB texture in [0, 1] (textured style only, else None)

The grid covers output pixel rows ``row0 ..`` and columns ``col0 ..`` of the aligned frame: the
``size`` x ``size`` crop, ``pad`` pixels more on every side (masks.py shifts templates by up to
``pad`` pixels), and beyond the crop whatever the mask needs to be complete -- the part under the
chin and the ear loops -- so that ``apply_landmarks`` can draw the whole mask on a photo.
Geometry is expressed in 112-pixel template units (landmarks: eyes y~51.6, nose tip y~71.7,
mouth corners y~92.3, chin ~115) and scaled to ``size``.

Geometry bounds per wear position (112 units, before the +-pad jitter; the top edge is the
highest point of the mask, at the nose bridge):
    high    top edge 57.0-60.0   (just under the lower eyelids, ~56; eye centres 51.6)
    normal  top edge 60.5-65.0   (half-way down the nose bridge; covers nose tip to chin)
    low     top edge 76.0-81.0   (under the nose tip 71.7: nose uncovered)
"""
import functools
import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np

STYLES = ("surgical", "n95", "kn95", "cloth", "patterned", "textured")
POSITIONS = ("normal", "high", "low")

# Highest shade value the uint8 encoding in masks.py represents (highlights above 1).
SHADE_MAX = 1.25

# (low, high) uniform ranges in 112-pixel units.
_POSITION_GEOMETRY = {
    #          top centre      bottom centre   bottom at the sides
    "high": dict(y_tc=(57.0, 60.0), y_bc=(106.0, 114.0), y_bs=(86.0, 94.0)),
    "normal": dict(y_tc=(60.5, 65.0), y_bc=(114.0, 124.0), y_bs=(94.0, 102.0)),
    "low": dict(y_tc=(76.0, 81.0), y_bc=(122.0, 132.0), y_bs=(104.0, 112.0)),
}
# The render grid of a position starts at this row (112 units), which keeps the per-pixel work
# to the lower face; the position's geometry stays well below it (tests check every template).
_FIRST_ROW_112 = {"high": 48.0, "normal": 53.0, "low": 69.0}
# Rows below the crop that the lowest mask of a position can reach (under the chin), and
# columns beside it that ear loops reach (they end 2-8 units outside the crop, near the ears).
_BELOW_112 = {"high": 8.0, "normal": 18.0, "low": 26.0}
_SIDE_112 = 10.0
_TILT = 0.05  # largest in-plane rotation of a mask, radians (~3 degrees)


def _u(rng, k, lo, hi):
    return rng.uniform(lo, hi, size=(k, 1, 1)).astype(np.float32)


def _smoothstep(t):
    """3t^2 - 2t^3 on t clipped to [0, 1] (modifies a temporary ``t`` in place)."""
    t = np.maximum(t, np.float32(0.0))
    np.minimum(t, np.float32(1.0), out=t)
    return t * t * (3.0 - 2.0 * t)


def _bump(d, width):
    """Smooth bump of half-width ``width``: 1 at d = 0, 0 for |d| >= width (cheaper than exp)."""
    t = d * (1.0 / width)
    t = 1.0 - t * t
    np.maximum(t, np.float32(0.0), out=t)
    return t * t


# ----------------------------------------------------------------------------------------------
# textures shipped with insightface (flat photos of surgical masks), with a procedural fallback

@functools.lru_cache(maxsize=1)
def insightface_mask_textures():
    """The mask photos insightface ships (``insightface/data/images/mask_*.jpg``) as float32 RGB.

    Located without importing insightface (its import pulls in onnxruntime). Returns a tuple of
    [64, 128, 3] arrays in [0, 1] (empty when insightface or the images are absent).
    """
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        return ()
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "images"
    out = []
    for name in ("mask_white", "mask_blue", "mask_black", "mask_green"):
        bgr = cv2.imread(str(folder / f"{name}.jpg"), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        h, w = bgr.shape[:2]
        # trim the photo's outer border (background and ear-loop welds)
        bgr = bgr[int(0.03 * h): h - int(0.03 * h), int(0.02 * w): w - int(0.02 * w)]
        small = cv2.resize(bgr, (128, 64), interpolation=cv2.INTER_AREA)
        out.append(small[:, :, ::-1].astype(np.float32) / 255.0)
    return tuple(out)


def _procedural_textures(rng, n=4):
    """Fallback non-woven textures: coloured base, blotchy fibre noise, three pleat lines."""
    out = []
    bases = [(0.92, 0.93, 0.94), (0.55, 0.75, 0.92), (0.18, 0.18, 0.2), (0.5, 0.75, 0.62)]
    yy = np.linspace(0, 1, 64, dtype=np.float32)[:, None]
    for i in range(n):
        noise = rng.standard_normal((64, 128)).astype(np.float32)
        blot = cv2.GaussianBlur(noise, (0, 0), 2.5) * 0.9 + cv2.GaussianBlur(noise, (0, 0), 0.7) * 0.25
        pleat = sum(np.exp(-((yy - c) / 0.012) ** 2) for c in (0.35, 0.55, 0.75))
        lum = 1.0 + 0.06 * blot - 0.18 * pleat
        out.append(np.clip(np.asarray(bases[i % 4], np.float32) * lum[..., None], 0, 1))
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# shapes

class _Grid:
    """Pixel-centre coordinates of the render grid, in 112-pixel units."""

    def __init__(self, size, pad, first_row_112, below_112):
        self.size, self.pad = size, pad
        self.s = size / 112.0
        self.row0 = int(math.floor(first_row_112 * self.s)) - pad
        self.col0 = -pad - int(math.ceil(_SIDE_112 * self.s))
        rows = np.arange(self.row0, size + pad + int(math.ceil(below_112 * self.s)), dtype=np.float32)
        cols = np.arange(self.col0, size - self.col0, dtype=np.float32)
        self.h, self.w = rows.size, cols.size
        self.y = (rows / self.s)[None, :, None]  # [1, h, 1]
        self.x = (cols / self.s)[None, None, :]  # [1, 1, w]


def _sheet(grid, k, rng, position, *, hw, p_t, d_ts, p_b, inset, pointed=False, d_side=None, chin=0.0):
    """Flat-sheet outline (surgical / cloth / kn95 family) and its surface coordinates.

    Top edge  y_top(x) = y_tc + (y_ts - y_tc) |u|^p_t   (peak over the nose bridge)
    Bottom    y_bot(x) = y_bc - (y_bc - y_bs) |u|^p_b   (under the chin)
    Sides     |x - cx| <= hw (1 - inset * t(y)): vertical edges drawn in toward the jaw.
    ``pointed``: kn95's fish shape, top and bottom curves meet at the side tips.
    ``chin``: offset of the bottom centre from the position's range (kn95's tip sits higher).
    Returns dict with sd (signed distance to the outline, 112 units, >0 inside), u [K,1,w]
    in [-1, 1] across, v [K,h,w] in [0, 1] top to bottom, and the curve parameters.
    """
    geo = _POSITION_GEOMETRY[position]
    cx = _u(rng, k, 54.5, 57.5)
    hw = _u(rng, k, *hw)
    y_tc = _u(rng, k, *geo["y_tc"])
    if pointed:
        y_ts = y_tc + _u(rng, k, *d_side)
        y_bs = y_ts
    else:
        y_ts = y_tc + _u(rng, k, *d_ts)
        y_bs = np.maximum(_u(rng, k, *geo["y_bs"]), y_ts + 14.0)
    y_bc = _u(rng, k, *geo["y_bc"]) + chin
    p_t = _u(rng, k, *p_t)
    p_b = _u(rng, k, *p_b)
    inset = _u(rng, k, *inset)

    tilt = _u(rng, k, -_TILT, _TILT)                   # radians; rotation by a vertical shear

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


def _cup(grid, k, rng, position):
    """N95 cup: an ellipse, flatter above its centre than below, sitting over nose and chin."""
    geo = _POSITION_GEOMETRY[position]
    cx = _u(rng, k, 54.5, 57.5)
    a = _u(rng, k, 35.0, 40.0)
    y_tc = _u(rng, k, *geo["y_tc"]) + 0.5
    b_top = _u(rng, k, 19.0, 25.0)
    cy = y_tc + b_top
    b_bot = _u(rng, k, *geo["y_bc"]) + 2.0 - cy
    tilt = _u(rng, k, -_TILT, _TILT)
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


def _alpha(sd, grid, feather):
    """Feathered coverage from a signed distance (112 units); ``feather`` [K,1,1] in output px."""
    return _smoothstep(0.5 + sd * (grid.s / feather))


def _band(dist_px, width_px):
    """1 on a band of ``width_px`` output pixels just inside an edge, smooth fall-off."""
    return 1.0 - _smoothstep((dist_px - width_px) / 1.2 + 0.5)


def _cylinder(u, rng, k, ambient=(0.5, 0.65)):
    """Lambert shading of a surface wrapping around the face; u [K,1,w] -> [K,1,w]."""
    amb = _u(rng, k, *ambient)
    light = _u(rng, k, -0.45, 0.45)
    angle = np.arcsin(np.clip(u * 0.92, -1.0, 1.0))
    return amb + (1.0 - amb) * np.maximum(np.cos(angle - light), 0.0)


def _grain(grid, k, rng, sigma, strength):
    """Fabric grain: one smoothed noise field per group, a random crop of it per template."""
    big = rng.standard_normal((grid.h + 16, grid.w + 16), dtype=np.float32)
    big = cv2.GaussianBlur(big, (0, 0), sigma)
    big *= strength / (big.std() + 1e-6)
    oy = rng.integers(0, 17, size=k)
    ox = rng.integers(0, 17, size=k)
    return np.stack([big[y:y + grid.h, x:x + grid.w] for y, x in zip(oy, ox)])


def _loops(grid, k, rng, g, shade, alpha, *, pointed=False):
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


# ----------------------------------------------------------------------------------------------
# styles: each returns (alpha, shade, level, tex)

def _surgical(grid, k, rng, position):
    g = _sheet(grid, k, rng, position, hw=(40.0, 45.0), p_t=(1.2, 1.8), d_ts=(3.0, 9.0),
               p_b=(1.8, 2.8), inset=(0.08, 0.2))
    alpha = _alpha(g["sd"], grid, _u(rng, k, 1.0, 1.8))
    v = g["v"]
    shade = _cylinder(g["u"], rng, k) * (1.0 - _u(rng, k, 0.08, 0.22) * v * v)
    # three pleats: each band darkens toward the fold below it; at each fold a thin dark crease
    # just below the fold line and a highlight just above it (signed distance to the nearest fold
    # keeps both anti-aliased)
    va, vb = _u(rng, k, 0.16, 0.24), _u(rng, k, 0.74, 0.84)
    q = (v - va) * (3.0 / (vb - va))
    inside = (q > -0.3) & (q < 3.3)
    band_px = (vb - va) / 3.0 * g["span"] * grid.s      # [K,1,w]
    near = np.rint(q)
    ds = (q - near) * band_px                          # px from the nearest fold, + below it
    saw = q - np.floor(q) - 0.5
    relief = (-0.035 * saw * _smoothstep(np.abs(ds) * 0.8)
              - 0.24 * _bump(ds - 0.5, 1.5)
              + 0.09 * _bump(ds + 1.3, 1.4))
    relief *= inside
    shade = shade * (1.0 + relief)
    # bound top and bottom strips with a stitch line
    top_px, bot_px = g["sd_t"] * grid.s, g["sd_b"] * grid.s
    strip = _band(top_px, 2.2) + _band(bot_px, 2.0)
    shade = shade * (1.0 + 0.05 * strip - 0.10 * _bump(top_px - 2.6, 1.1))
    shade = shade * (1.0 + _grain(grid, k, rng, 0.9, 0.012))
    _loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, None, None


def _n95(grid, k, rng, position):
    g = _cup(grid, k, rng, position)
    alpha = _alpha(g["sd"], grid, _u(rng, k, 1.0, 1.6))
    u, w = g["u"], g["w"]
    z = np.sqrt(np.maximum(1.0 - g["r2"], 0.0))
    lx, ly = _u(rng, k, -0.5, 0.5), _u(rng, k, -0.45, -0.1)
    lz = np.sqrt(1.0 - lx * lx - ly * ly)
    nx, ny = u * 0.75, w * 0.75
    norm = np.sqrt(nx * nx + ny * ny + z * z) + 1e-6
    lam = np.maximum((nx * lx + ny * ly + z * lz) / norm, 0.0)
    amb = _u(rng, k, 0.35, 0.5)
    shade = amb + (1.0 - amb) * 1.12 * lam
    # moulded rim: a darker rolled edge 1.5-2.5 px wide
    edge_px = g["sd"] * grid.s
    shade = shade * (1.0 - 0.16 * _band(edge_px, _u(rng, k, 1.5, 2.5)))
    # metal nose clip: a thin bright strip below the top edge
    y, x = grid.y, grid.x
    clip_y = g["y_tc"] + 2.5
    clip = _bump((y - clip_y) * grid.s, 1.6) * (np.abs(x - g["cx"]) < _u(rng, k, 6.0, 10.0))
    shade = shade * (1.0 + 0.18 * clip)
    # exhalation valve on half of the masks: a raised disc with a dark ring
    has_valve = (rng.random((k, 1, 1)) < 0.5).astype(np.float32)
    sign = np.where(rng.random((k, 1, 1)) < 0.5, -1.0, 1.0).astype(np.float32)
    vx = g["cx"] + sign * _u(rng, k, 12.0, 17.0)
    vy = g["cy"] + _u(rng, k, 8.0, 14.0)
    vr = _u(rng, k, 6.0, 8.5)
    dist = np.sqrt((x - vx) ** 2 + (y - vy) ** 2) - vr  # [K,h,w], 112 units
    disc = _smoothstep(0.5 - dist * grid.s)
    ring = _bump(dist * grid.s, 1.6)
    shade = shade * (1.0 + has_valve * (0.08 * disc - 0.35 * ring))
    shade = shade * (1.0 + _grain(grid, k, rng, 1.0, 0.012))
    # head straps: two lines leaving the cup sideways
    b_bot = g["b_bot"]
    g2 = dict(cx=g["cx"], hw=g["a"] * 0.97, y_ts=g["cy"] - 2.0, y_bs=g["cy"] + 14.0, tilt=g["tilt"],
              inset=1.0 - np.sqrt(np.maximum(1.0 - (14.0 / b_bot) ** 2, 0.0)))
    _loops(grid, k, rng, g2, shade, alpha)
    return alpha, shade, None, None


def _kn95(grid, k, rng, position):
    g = _sheet(grid, k, rng, position, hw=(41.0, 46.0), p_t=(1.5, 2.2), d_ts=None,
               p_b=(1.15, 1.5), inset=(0.0, 0.0), pointed=True, d_side=(14.0, 20.0), chin=-5.0)
    alpha = _alpha(g["sd"], grid, _u(rng, k, 1.0, 1.6))
    u, v = g["u"], g["v"]
    shade = _cylinder(u, rng, k, ambient=(0.55, 0.7))
    # two panels folded at the vertical centre line: one faces the light more than the other
    side = np.tanh(u * 12.0)
    shade = shade * (1.0 + _u(rng, k, -0.1, 0.1) * side) * (1.0 - _u(rng, k, 0.05, 0.15) * v * v)
    crease = _bump(u * (g["hw"] * grid.s), 1.3)
    shade = shade * (1.0 - 0.22 * crease)
    # heat-welded border with an embossed dotted line
    edge_px = g["sd"] * grid.s
    weld = _band(edge_px, _u(rng, k, 1.8, 2.8))
    dots = 0.5 + 0.5 * np.cos(grid.x * (2 * math.pi / 1.8)) * np.cos(grid.y * (2 * math.pi / 1.8))
    shade = shade * (1.0 - weld * (0.05 + 0.08 * dots))
    shade = shade * (1.0 + _grain(grid, k, rng, 0.8, 0.01))
    _loops(grid, k, rng, g, shade, alpha, pointed=True)
    return alpha, shade, None, None


def _cloth_shape(grid, k, rng, position):
    return _sheet(grid, k, rng, position, hw=(39.0, 44.0), p_t=(1.7, 2.4), d_ts=(6.0, 12.0),
                  p_b=(1.8, 2.6), inset=(0.06, 0.16))


def _cloth_shading(grid, k, rng, g):
    u, v = g["u"], g["v"]
    shade = _cylinder(u, rng, k, ambient=(0.5, 0.62)) * (1.0 - _u(rng, k, 0.1, 0.25) * v * v)
    # soft wrinkles: two low-frequency ripples across the fabric
    for _ in range(2):
        f, ph, tilt = _u(rng, k, 2.0, 4.0), _u(rng, k, 0.0, 6.3), _u(rng, k, -0.8, 0.8)
        shade = shade * (1.0 + 0.035 * np.sin(2 * math.pi * f * (v + tilt * u) + ph))
    # contoured masks have a vertical centre seam
    has_seam = (rng.random((k, 1, 1)) < 0.6).astype(np.float32)
    seam = _bump(u * (g["hw"] * grid.s), 1.4)
    shade = shade * (1.0 - 0.25 * has_seam * seam)
    # a stitched hem around the edge on some masks
    has_hem = (rng.random((k, 1, 1)) < 0.5).astype(np.float32)
    edge_px = g["sd"] * grid.s
    stitch = _bump(edge_px - 2.0, 0.9) * (np.cos(grid.x * 2.2) > 0)
    shade = shade * (1.0 - has_hem * 0.15 * stitch)
    # woven texture
    shade = shade * (1.0 + _grain(grid, k, rng, 0.5, 0.016))
    return shade


def _cloth(grid, k, rng, position):
    g = _cloth_shape(grid, k, rng, position)
    alpha = _alpha(g["sd"], grid, _u(rng, k, 1.1, 2.0))
    shade = _cloth_shading(grid, k, rng, g)
    _loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, None, None


def _pattern(grid, k, rng, g):
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
            lvl = _smoothstep((rng.uniform(0.2, 0.35) * period - tri) * aa + 0.5)
        elif kind[i] == 1:  # polka dots on a staggered grid
            period = rng.uniform(6.0, 11.0)
            rad = period * rng.uniform(0.18, 0.3)
            row = np.floor(y / period)
            xs = x + 0.5 * period * (row % 2)
            fx = xs / period - np.floor(xs / period) - 0.5
            fy = y / period - row - 0.5
            dist = np.sqrt(fx * fx + fy * fy) * period
            lvl = _smoothstep((rad - dist) * aa + 0.5)
        elif kind[i] == 2:  # gingham checks: two crossing stripe sets give three tones
            period = rng.uniform(6.0, 10.0)
            sx = _smoothstep((period / 4 - np.abs(x / period - np.floor(x / period) - 0.5) * period) * aa + 0.5)
            sy = _smoothstep((period / 4 - np.abs(y / period - np.floor(y / period) - 0.5) * period) * aa + 0.5)
            lvl = 0.5 * (sx + sy)
        elif kind[i] == 3:  # chevrons
            period = rng.uniform(6.0, 10.0)
            t = (y + np.abs(((x / period) % 2.0) - 1.0) * period * 0.8) / period
            tri = np.abs(t - np.floor(t) - 0.5) * period
            lvl = _smoothstep((period * 0.25 - tri) * aa + 0.5)
        else:  # camouflage: thresholded smooth noise, three tones
            n = rng.standard_normal((grid.h // 4 + 3, grid.w // 4 + 3)).astype(np.float32)
            n = cv2.resize(cv2.GaussianBlur(n, (0, 0), 1.0), (grid.w, grid.h), interpolation=cv2.INTER_CUBIC)
            n /= n.std() + 1e-6
            lvl = 0.5 * _smoothstep(n * 3.0 + 1.0) + 0.5 * _smoothstep(n * 3.0 - 1.5)
        out[i] = np.broadcast_to(lvl, (grid.h, grid.w))
    return out


def _patterned(grid, k, rng, position):
    g = _cloth_shape(grid, k, rng, position)
    alpha = _alpha(g["sd"], grid, _u(rng, k, 1.1, 2.0))
    shade = _cloth_shading(grid, k, rng, g)
    level = _pattern(grid, k, rng, g)
    level *= alpha > 0.0  # loops outside the fabric take the first colour, not the pattern
    _loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, level, None


def _textured(grid, k, rng, position):
    g = _sheet(grid, k, rng, position, hw=(40.0, 45.0), p_t=(1.2, 1.8), d_ts=(3.0, 9.0),
               p_b=(1.8, 2.8), inset=(0.08, 0.2))
    alpha = _alpha(g["sd"], grid, _u(rng, k, 1.0, 1.8))
    textures = insightface_mask_textures() or _procedural_textures(rng)
    # texture coordinates: arc length across (foreshortened at the sides), v down
    su = np.arcsin(g["u"] * 0.97) / math.asin(0.97)      # [K,1,w] in [-1, 1]
    tex = np.empty((k, grid.h, grid.w, 3), np.float32)
    pick = rng.integers(0, len(textures), size=k)
    for i in range(k):
        t = textures[pick[i]]
        th, tw = t.shape[:2]
        map_x = np.broadcast_to((su[i] * 0.5 + 0.5) * (tw - 1), (grid.h, grid.w)).astype(np.float32)
        map_y = (g["v"][i] * (th - 1)).astype(np.float32)
        tex[i] = cv2.remap(t, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    shade = _cylinder(g["u"], rng, k, ambient=(0.6, 0.75)) * (1.0 - _u(rng, k, 0.05, 0.18) * g["v"] ** 2)
    shade = np.array(np.broadcast_to(shade, alpha.shape), dtype=np.float32)
    _loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, None, tex


# Templates rendered per call: [16, ~80, 136] float32 temporaries stay in the L2 cache, which
# makes the element-wise maths several times faster than on all K templates at once.
_CHUNK = 16

_RENDERERS = {
    "surgical": _surgical,
    "n95": _n95,
    "kn95": _kn95,
    "cloth": _cloth,
    "patterned": _patterned,
    "textured": _textured,
}


def render_group(style, position, k, size, pad, rng):
    """Render ``k`` random templates of one (style, position).

    Returns dict(alpha, shade, level, tex, row0, col0) as described in the module docstring:
    array element [., i, j] is pixel (row0 + i, col0 + j) of the aligned frame.
    """
    if style not in _RENDERERS:
        raise ValueError(f"unknown mask style {style!r}; choose from {STYLES}")
    if position not in _POSITION_GEOMETRY:
        raise ValueError(f"unknown wear position {position!r}; choose from {POSITIONS}")
    grid = _Grid(size, pad, _FIRST_ROW_112[position], _BELOW_112[position])
    parts = []
    for start in range(0, k, _CHUNK):
        parts.append(_RENDERERS[style](grid, min(_CHUNK, k - start), rng, position))
    alpha = np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False)
    shade = np.concatenate([np.broadcast_to(p[1], p[0].shape) for p in parts]).astype(np.float32, copy=False)
    level = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    tex = None if parts[0][3] is None else np.concatenate([p[3] for p in parts])
    for arr, hi in ((alpha, 1.0), (shade, SHADE_MAX), (level, 1.0), (tex, 1.0)):
        if arr is not None:
            np.maximum(arr, np.float32(0.0), out=arr)
            np.minimum(arr, np.float32(hi), out=arr)
    return dict(alpha=alpha, shade=shade, level=level, tex=tex, row0=grid.row0, col0=grid.col0)

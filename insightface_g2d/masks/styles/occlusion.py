"""Occlusion: renderer-agnostic cover of the lower face -- no mask model, random shapes and fills.

Not a drawing of any mask. Each template is a random outline over the lower face: a top edge at
a random height (per wear position, from the nose bridge to under the nose tip), with random
curvature (sides lower or higher than the middle) and tilt, and a bottom that follows the jaw
out to the face edge and under the chin, either as a jaw-shaped curve, a smooth ellipse-like
curve or a random polygon (jittered vertices). Its fill is one of: a solid colour, a smooth
two-colour gradient, blurred colour noise at a random scale, stripes at a random angle and
frequency, or a skin-like tone (hands, scarves and masks of skin colour exist, and a student
should not learn that "covered" means "not skin-coloured"). Soft shading (a random light
direction across the face and a vertical fall-off) and a random edge softness finish it.

The point is to teach a student that whatever covers the lower face carries no identity,
whichever renderer drew it: no pleats, loops or seams that a network could key on.
The style is a "texture" kind: the fill is the RGB texture, the palette is white (the synthesizer
still applies its per-face brightness jitter and the scene brightness of the face).
"""
import cv2
import numpy as np

from .drawing import uniform
from .style import MaskStyle

# Top edge at the middle of the face (112 units) per wear position. The nose tip is at 71.7:
# "high" and "normal" cover it (from the nose bridge / its lower half), "low" leaves it free.
TOP = {"high": (58.5, 63.0), "normal": (61.5, 67.0), "low": (77.0, 81.0)}
# Lowest point of the cover (112 units; the chin is at ~112: covers end under it, inside the render
# grid) and the face's half-width at the cheeks.
CHIN = {"high": (108.0, 118.0), "normal": (116.0, 126.0), "low": (118.0, 130.0)}
HALF_WIDTH = (40.0, 50.0)
SHAPES = ("jaw", "ellipse", "polygon")
FILLS = ("solid", "gradient", "noise", "stripes", "skin")
_SKIN = np.asarray([(0.93, 0.78, 0.68), (0.80, 0.62, 0.50), (0.62, 0.45, 0.34), (0.40, 0.28, 0.20),
                    (0.98, 0.86, 0.78)], np.float32)
_SS = 4  # supersampling of the outline (sub-pixel vertices for cv2.fillPoly)


def _outline(rng, position, shape):
    """Closed outline [n, 2] (x, y in 112 units): top edge left to right, then the bottom back."""
    cx = rng.uniform(53.0, 59.0)
    hw = rng.uniform(*HALF_WIDTH)
    y_tc = rng.uniform(*TOP[position])
    curve = rng.uniform(-4.0, 12.0)            # + : sides lower than the middle (like a worn mask)
    tilt = rng.uniform(-0.06, 0.06)
    power = rng.uniform(1.5, 3.0)
    chin = rng.uniform(*CHIN[position])
    xs = np.linspace(-1.0, 1.0, 25)
    top = np.stack([cx + hw * xs, y_tc + curve * np.abs(xs) ** power + tilt * hw * xs], axis=1)
    # the bottom goes from the right end of the top edge down along the jaw to the chin and back
    ts = np.linspace(0.0, np.pi, 33)           # 0: right side, pi: left side
    side_y = top[[-1, 0], 1]
    if shape == "jaw":
        # cheeks nearly vertical, then a rounded chin: a superellipse of exponent 2.5-4
        e = rng.uniform(2.5, 4.0)
        c, s = np.cos(ts), np.sin(ts)
        bx = np.sign(c) * np.abs(c) ** (2.0 / e)
        by = np.abs(s) ** (2.0 / e)
    else:
        bx, by = np.cos(ts), np.sin(ts)
    y_side = np.where(bx >= 0, side_y[0], side_y[1])
    bottom = np.stack([cx + hw * bx * rng.uniform(0.92, 1.05), y_side + (chin - y_side) * by], axis=1)
    pts = np.concatenate([top, bottom[1:-1]])
    # tilt and upward curvature never lift the edge above its position's range (the eyes stay free)
    pts[:, 1] = np.maximum(pts[:, 1], TOP[position][0])
    if shape == "polygon":
        # a few jittered vertices of the same region: straight cuts, corners, uneven sides
        n = int(rng.integers(5, 10))
        keep = np.union1d(rng.choice(len(pts), size=n, replace=False), [0, 12, 24, 24 + 16])
        centre, chin_pt = pts[12].copy(), pts[40].copy()
        pts = pts[keep] + rng.normal(0.0, 3.0, size=(len(keep), 2))
        pts[keep == 12] = centre                   # the top edge's middle keeps its height
        pts[keep == 40] = chin_pt                  # and the bottom's middle its depth
        pts[:, 1] = np.maximum(pts[:, 1], TOP[position][0])
    return pts


def _fill(rng, fill, h, w):
    """RGB fill float32 [h, w, 3] in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = rng.uniform(0.05, 0.95, size=(2, 3)).astype(np.float32)
    if fill == "solid":
        return np.broadcast_to(c1, (h, w, 3)).copy()
    if fill == "skin":
        base = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.85, 1.1, size=3).astype(np.float32)
        return np.clip(np.broadcast_to(base, (h, w, 3)), 0.0, 1.0).astype(np.float32)
    if fill == "gradient":
        ang = rng.uniform(0.0, np.pi)
        t = xx * np.cos(ang) + yy * np.sin(ang)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        return c1 + (c2 - c1) * t[..., None]
    if fill == "noise":
        sigma = rng.uniform(1.2, 6.0)
        noise = rng.standard_normal((h, w, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        noise /= noise.std() + 1e-6
        amp = rng.uniform(0.08, 0.3)
        return np.clip(c1 + amp * noise, 0.0, 1.0)
    # stripes
    ang = rng.uniform(0.0, np.pi)
    period = rng.uniform(5.0, 16.0)
    t = xx * np.cos(ang) + yy * np.sin(ang)
    level = 0.5 + 0.5 * np.sin(2.0 * np.pi * t / period + rng.uniform(0.0, 2 * np.pi))
    level = np.clip((level - 0.5) * rng.uniform(1.0, 6.0) + 0.5, 0.0, 1.0)  # soft to hard stripes
    return c1 + (c2 - c1) * level[..., None]


def render(grid, k, rng, position):
    h, w, s = grid.h, grid.w, grid.s
    alpha = np.zeros((k, h, w), np.float32)
    tex = np.empty((k, h, w, 3), np.float32)
    shapes = rng.integers(0, len(SHAPES), size=k)
    fills = rng.integers(0, len(FILLS), size=k)
    feather = uniform(rng, k, 0.6, 2.5)[:, 0, 0]
    canvas = np.zeros((h * _SS, w * _SS), np.uint8)
    for i in range(k):
        pts = _outline(rng, position, SHAPES[shapes[i]])
        # 112 units -> supersampled grid pixels (pixel centres of the grid are at integer rows/cols)
        px = np.stack([(pts[:, 0] * s - grid.col0 + 0.5) * _SS, (pts[:, 1] * s - grid.row0 + 0.5) * _SS], axis=1)
        canvas[:] = 0
        cv2.fillPoly(canvas, [np.round(px).astype(np.int32)], 255, cv2.LINE_AA)
        a = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        a = cv2.GaussianBlur(a, (0, 0), float(feather[i]) * 0.5)
        # a soft edge stays soft; inside, the cover is opaque
        alpha[i] = np.clip((a - 0.5) * 2.2 + 0.5, 0.0, 1.0)
        tex[i] = _fill(rng, FILLS[fills[i]], h, w)
    # a cover that reaches the grid's last rows (worn high, far under the chin; never inside the crop
    # even shifted by the jitter) fades out there: every template ends inside its array
    alpha[:, -3:] *= np.asarray([0.67, 0.33, 0.0], np.float32)[:, None]
    # soft shading: a broad light from one side, darker toward the chin, a little random relief
    u = np.clip((grid.x - uniform(rng, k, 53.0, 59.0)) / 50.0, -1.0, 1.0)          # [K,1,w]
    light = uniform(rng, k, -0.5, 0.5)
    amb = uniform(rng, k, 0.55, 0.8)
    shade = amb + (1.0 - amb) * np.maximum(np.cos(np.arcsin(u * 0.9) - light), 0.0)
    v = np.clip((grid.y - 60.0) / 55.0, 0.0, 1.0)                                     # [1,h,1]
    shade = shade * (1.0 - uniform(rng, k, 0.0, 0.25) * v * v)
    shade = np.array(np.broadcast_to(shade, alpha.shape), dtype=np.float32)
    relief = rng.standard_normal((h, w)).astype(np.float32)
    relief = cv2.GaussianBlur(relief, (0, 0), 6.0)
    relief *= 0.05 / (relief.std() + 1e-6)
    shade *= 1.0 + relief * rng.uniform(0.0, 1.0, size=(k, 1, 1)).astype(np.float32)
    np.clip(shade, 0.0, 1.2, out=shade)
    np.clip(tex, 0.0, 1.0, out=tex)
    return alpha, shade, None, tex


STYLE = MaskStyle("occlusion", render, ((255, 255, 255),), kind="texture", default=False)  # the fill: the colour

"""Procedural cartoon faces: identity sampling and rendering on the ArcFace 112x112 template.

`sample_identity(rng)` draws everything that stays fixed for one person (head and jaw shape,
skin and its texture, hair, eyes, brows, nose, mouth, beard, glasses) and pre-renders the parts
that never move. `render(ident, rng)` draws one photo of that person with its own nuisances
(pose, expression, lighting, colour cast, background, noise, blur) and returns it with its five
landmarks.

The eye centres, nose tip and mouth corners sit on ARCFACE_TEMPLATE (plus a few pixels of identity
and pose offsets), so mask synthesis written for aligned real faces covers nose, mouth and chin.
Identity cues are spread over both halves of the face on purpose: hair, brows, eyes, forehead
marks and glasses above the nose; jaw, chin, mouth, lips, beard, nose and cheek marks below it,
so hiding the lower face removes part (not all) of the identity signal.

Drawing uses cv2 primitives with anti-aliasing and sub-pixel coordinates (shift=4: 1/16 px).
Speed: the static head (back hair, neck, ears, skin with texture, nose, beard) is one cached
premultiplied layer per identity; per photo only the background, mouth, eyes, brows, front hair
and glasses are drawn, then one warp and one lighting pass.
"""
import cv2
import numpy as np

from insightface_g2d.data.align import ARCFACE_TEMPLATE

CANVAS = 112
_SHIFT = 4
_SCALE = float(1 << _SHIFT)
_AA = cv2.LINE_AA

_TEMPLATE = np.asarray(ARCFACE_TEMPLATE, dtype=np.float64).reshape(5, 2)
_MID_X = float(_TEMPLATE[2, 0])

_SKIN = np.array([[255, 228, 206], [243, 198, 165], [226, 176, 134], [200, 140, 100],
                  [165, 108, 74], [124, 80, 54], [88, 58, 42]], np.float64)
_HAIR = np.array([[28, 24, 24], [58, 40, 30], [92, 62, 40], [128, 84, 48], [150, 72, 36],
                  [196, 110, 56], [214, 184, 120], [236, 214, 160], [140, 136, 132],
                  [214, 212, 206], [60, 70, 150], [170, 60, 130]], np.float64)
_HAIR_P = np.array([16, 16, 14, 10, 6, 5, 9, 5, 7, 5, 1.5, 1.5])
_EYES = np.array([[92, 56, 30], [52, 32, 22], [64, 112, 176], [86, 140, 92], [118, 130, 142],
                  [138, 108, 52], [40, 90, 120]], np.float64)
_FRAMES = np.array([[20, 20, 22], [90, 56, 30], [190, 160, 70], [150, 30, 40], [40, 60, 140],
                    [200, 200, 205]], np.float64)

_HAIR_STYLES = ("bald", "buzz", "short", "medium", "long", "fringe", "sidepart", "curly", "receding")
_HAIR_STYLE_P = np.array([5, 9, 17, 14, 14, 10, 13, 9, 9], np.float64)
_BEARDS = ("none", "stubble", "moustache", "goatee", "full", "chinstrap")
_BEARD_P = np.array([46, 13, 10, 10, 15, 6], np.float64)
_LIPS = np.array([[190, 70, 84], [200, 40, 52], [150, 56, 92], [120, 62, 52], [222, 132, 132],
                  [176, 92, 70]], np.float64)
_LIPS_P = np.array([40, 12, 10, 12, 14, 12], np.float64)

# Constant parameter grids (allocating them per photo costs more than the drawing).
_U9 = np.linspace(0.0, 1.0, 9)
_U13 = np.linspace(0.0, 1.0, 13)
_ENV13 = np.sin(np.pi * _U13) ** 0.6
_PAR13 = 4.0 * _U13 * (1.0 - _U13)
_BOW13 = np.exp(-((_U13 - 0.5) / 0.09) ** 2) * _ENV13
_LASH_A = np.deg2rad(np.linspace(200, 340, 4))
# Normalised pixel grids in [-1, 1] (3 channels), for the lighting gradient.
_GY3, _GX3 = (np.repeat(g[:, :, None], 3, axis=2)
              for g in np.mgrid[-1:1:CANVAS * 1j, -1:1:CANVAS * 1j].astype(np.float32))
# A fixed bank of Gaussian noise; each photo reads a window at a random offset (cheaper than
# drawing 37k normals per photo, and just as deterministic).
_NOISE = np.random.default_rng(12345).standard_normal((CANVAS + 64, CANVAS + 64, 3)).astype(np.float32)


def _fx(pts):
    """Float pixel coordinates (..., 2) -> int32 fixed point for cv2's shift argument."""
    return np.round(np.asarray(pts, np.float64) * _SCALE).astype(np.int32)


def _pt(x, y):
    return int(round(x * _SCALE)), int(round(y * _SCALE))


def _col(c):
    """Colour array -> tuple of floats in [0, 255] (what cv2 takes)."""
    return tuple(min(255.0, max(0.0, float(v))) for v in c)


def _ellipse(img, c, axes, angle, color, thickness=-1, start=0, end=360):
    cv2.ellipse(img, _pt(c[0], c[1]), _pt(max(axes[0], 0.1), max(axes[1], 0.1)), angle, start, end,
                color, thickness, _AA, _SHIFT)


def _poly(img, pts, color):
    cv2.fillPoly(img, [_fx(pts)], color, _AA, _SHIFT)


def _line(img, pts, color, thickness=1, closed=False):
    cv2.polylines(img, [_fx(pts)], closed, color, int(thickness), _AA, _SHIFT)


def _pick(rng, table, p=None):
    if p is None:
        return table[int(rng.integers(len(table)))]
    return table[int(rng.choice(len(table), p=p / p.sum()))]


def _mix(a, b, t):
    return np.asarray(a, np.float64) * (1.0 - t) + np.asarray(b, np.float64) * t


# --------------------------------------------------------------------------- identity


def head_outline(d, n=48):
    """Closed head contour [n+1, 2]: upper half an ellipse, lower half a tapered super-ellipse (jaw).

    Starts at the left temple, runs over the top to the right, then down the jaw and chin back left.
    """
    cx, cy, ax = d["cx"], d["cy"], d["ax"]
    t_up = np.linspace(np.pi, 2 * np.pi, n // 2, endpoint=False)
    up = np.stack([cx + ax * np.cos(t_up), cy + d["ay_top"] * np.sin(t_up)], 1)
    t_lo = np.linspace(0, np.pi, n // 2 + 1)
    c, s = np.cos(t_lo), np.sin(t_lo)
    e = 2.0 / d["jaw_p"]
    x = np.sign(c) * np.abs(c) ** e
    y = np.abs(s) ** e
    x = x * (1.0 - d["chin_taper"] * y ** 2)
    lo = np.stack([cx + ax * x, cy + d["ay_bot"] * y], 1)
    return np.concatenate([up, lo])


def _sample_params(rng):
    """Scalar and colour parameters of one identity, plus its canonical five landmarks."""
    u = rng.uniform
    d = {}
    # Head and jaw.
    d["cx"] = _MID_X + u(-1.0, 1.0)
    d["cy"] = u(60.0, 67.0)
    d["ax"] = u(37.0, 47.0)
    d["ay_top"] = u(50.0, 60.0)
    d["ay_bot"] = u(max(38.0, 103.0 - d["cy"]), 54.0)
    d["jaw_p"] = u(1.4, 4.2)
    d["chin_taper"] = u(0.0, 0.45)
    d["chin_cleft"] = rng.random() < 0.2
    d["ear"] = (u(4.5, 8.0), u(8.0, 13.0), u(62.0, 72.0))
    # Skin.
    t = u(0, len(_SKIN) - 1.001)
    lo = int(t)
    d["skin"] = np.clip(_mix(_SKIN[lo], _SKIN[lo + 1], t - lo) * u(0.93, 1.07, 3), 20, 255)
    # Hair.
    style = _pick(rng, _HAIR_STYLES, _HAIR_STYLE_P)
    d["hair_style"] = style
    d["hair"] = np.clip(_pick(rng, _HAIR, _HAIR_P) * u(0.82, 1.15) * u(0.95, 1.05, 3), 0, 255)
    if style == "buzz":
        d["hair"] = _mix(d["hair"], d["skin"], u(0.3, 0.55))
    d["hair_vol"] = u(1.12, 1.28) if style == "curly" else u(1.03, 1.16)
    d["hair_bumps"] = (u(2.0, 4.0) if style == "curly" else u(0.0, 0.8), u(8, 16), u(0, 2 * np.pi))
    d["hairline_y"] = {"fringe": u(33.0, 39.0), "receding": u(14.0, 22.0)}.get(style, u(18.0, 31.0))
    d["hairline_curv"] = u(2.0, 16.0)
    d["hairline_tilt"] = u(-9.0, 9.0) if style in ("sidepart", "fringe") else u(-2.0, 2.0)
    d["widow_peak"] = u(1.0, 5.0) if rng.random() < 0.2 else 0.0
    d["recede"] = u(6.0, 14.0) if style == "receding" else 0.0
    d["sideburn_y"] = u(50.0, 76.0)
    d["sideburn_w"] = u(0.82, 0.95)
    d["long_len"] = u(95.0, 135.0)
    d["long_w"] = u(4.0, 14.0)
    # Eyes.
    d["eye_dx"] = u(-1.8, 1.8)
    d["eye_dy"] = u(-1.5, 1.5)
    d["eye_w"] = u(5.0, 8.0)
    d["eye_h"] = u(2.1, 4.2)
    d["eye_tilt"] = u(-12.0, 12.0)
    d["iris_r"] = u(2.2, 3.6)
    d["iris"] = np.clip(_pick(rng, _EYES) * u(0.8, 1.2, 3), 0, 255)
    d["pupil"] = u(0.35, 0.55)
    d["sclera"] = np.array([242.0, 238.0, 230.0]) * u(0.92, 1.0)
    d["lid_t"] = int(rng.integers(1, 3))
    d["crease"] = u(1.4, 3.2) if rng.random() < 0.6 else 0.0
    d["lashes"] = rng.random() < 0.35
    d["eye_bags"] = rng.random() < 0.2
    # Eyebrows.
    d["brow_gap"] = u(7.5, 13.0)
    d["brow_inner"] = u(4.0, 11.0)
    d["brow_len"] = u(13.0, 21.0)
    d["brow_arch"] = u(-0.5, 5.0)
    d["brow_peak"] = u(0.4, 0.8)
    d["brow_tilt"] = u(-3.5, 3.0)
    d["brow_t"] = u(1.3, 4.8)
    d["brow_taper"] = u(0.2, 1.0)
    brow = d["hair"] * u(0.55, 0.95) if d["hair"].mean() > 120 and rng.random() < 0.6 else d["hair"]
    d["brow"] = np.minimum(brow, d["skin"] * 0.8)
    # Nose.
    d["nose_dy"] = u(-2.5, 2.0)
    d["nose_w"] = u(4.0, 11.0)
    d["nostril"] = u(0.9, 2.2)
    d["nose_bridge"] = int(rng.integers(0, 3))  # 0 none, 1 one side, 2 both sides
    d["nose_tip"] = rng.random() < 0.4
    d["nose_col"] = d["skin"] * u(0.62, 0.8)
    # Mouth.
    d["mouth_dw"] = u(-6.0, 5.0)
    d["mouth_dy"] = u(-2.0, 2.5)
    d["lip_up"] = u(1.0, 4.5)
    d["lip_lo"] = u(1.5, 6.5)
    d["lip_bow"] = u(0.0, 1.8)
    d["mouth_curve"] = u(-1.5, 1.5)
    lip = _mix(d["skin"], _pick(rng, _LIPS, _LIPS_P) * u(0.85, 1.15, 3), u(0.3, 0.8))
    d["lip"] = lip * u(0.7, 0.98)
    d["dimples"] = rng.random() < 0.25
    d["nose_shade"] = u(0.08, 0.2) if rng.random() < 0.5 else 0.0
    # Beard, glasses.
    d["beard"] = _pick(rng, _BEARDS, _BEARD_P)
    greying = rng.random() < 0.15
    d["beard_col"] = _mix(d["hair"], [200, 198, 192], u(0.3, 0.7)) if greying else d["hair"] * u(0.85, 1.0)
    d["beard_lo"] = u(1.5, 5.0)
    d["beard_w"] = u(5.0, 11.0)
    d["moustache_t"] = u(1.8, 4.0)
    d["glasses"] = None
    if rng.random() < 0.2:
        d["glasses"] = {"round": bool(rng.random() < 0.5), "r": u(7.5, 10.5), "hr": u(5.5, 8.0),
                        "t": int(rng.integers(1, 3)), "col": _pick(rng, _FRAMES) * u(0.85, 1.15, 3)}
    d["outline"] = head_outline(d)
    # Canonical five points: template plus this person's proportions.
    lmk = _TEMPLATE.copy()
    lmk[0] += [-d["eye_dx"], d["eye_dy"]]
    lmk[1] += [d["eye_dx"], d["eye_dy"]]
    lmk[2] += [d["cx"] - _MID_X, d["nose_dy"]]
    lmk[3] += [-d["mouth_dw"], d["mouth_dy"]]
    lmk[4] += [d["mouth_dw"], d["mouth_dy"]]
    d["lmk"] = lmk
    return d


def _skin_texture(d, rng):
    """Per-identity multiplicative skin pattern (float32 [112, 112, 3], 0 outside the face).

    Low-frequency blotches, freckles, moles, stubble, blush, wrinkles, a scar: identity marks
    in both the upper and the lower face.
    """
    u = rng.uniform
    tex = np.zeros((CANVAS, CANVAS, 3), np.float32)
    low = rng.standard_normal((6, 6)).astype(np.float32) * u(0.02, 0.07)
    tex += cv2.resize(low, (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)[:, :, None]
    cx = d["cx"]
    if rng.random() < 0.22:  # freckles over nose and cheeks
        k = -u(0.12, 0.28)
        for _ in range(int(rng.integers(15, 50))):
            x, y = cx + u(-26, 26), u(52, 80)
            cv2.circle(tex, _pt(x, y), int(u(0.6, 1.1) * _SCALE), (k, k * 1.15, k * 1.35), -1, _AA, _SHIFT)
    for _ in range(int(rng.poisson(0.9))):  # moles anywhere on the face
        x, y = cx + u(-0.75, 0.75) * d["ax"], u(30, 100)
        cv2.circle(tex, _pt(x, y), int(u(0.8, 1.7) * _SCALE), (-0.55, -0.62, -0.66), -1, _AA, _SHIFT)
    if d["beard"] == "stubble" or (d["beard"] != "none" and rng.random() < 0.3):
        region = np.zeros((CANVAS, CANVAS), np.float32)
        out = d["outline"]
        poly = np.concatenate([out[out[:, 1] > d["cy"] + 4], [[cx - 16, 80.0], [cx, 76.0], [cx + 16, 80.0]]])
        cv2.fillPoly(region, [_fx(poly)], 1.0, _AA, _SHIFT)
        region = cv2.GaussianBlur(region, (0, 0), 2.0)
        grain = 0.7 + 0.6 * rng.random((CANVAS, CANVAS)).astype(np.float32)
        tex -= (u(0.12, 0.3) * region * grain)[:, :, None]
    if rng.random() < 0.3:  # blush
        blush = np.zeros((CANVAS, CANVAS), np.float32)
        for side in (-1, 1):
            cv2.circle(blush, _pt(cx + side * u(18, 25), u(74, 84)), int(u(5, 8) * _SCALE), 1.0, -1, _AA, _SHIFT)
        blush = cv2.GaussianBlur(blush, (0, 0), 3.0) * u(0.08, 0.18)
        tex[:, :, 1] -= blush
        tex[:, :, 2] -= blush * 0.8
    if rng.random() < 0.25:  # forehead lines
        for j in range(int(rng.integers(2, 4))):
            y = u(26, 36) + 3.5 * j
            cv2.ellipse(tex, _pt(cx, y + 6), _pt(u(10, 18), 6), 0, 200, 340, (-0.14,) * 3, 1, _AA, _SHIFT)
    if rng.random() < 0.25:  # nasolabial folds
        for side in (-1, 1):
            _line(tex, [[cx + side * 10, 70], [cx + side * 15, 80], [cx + side * 17, 92]], (-0.16,) * 3)
    if rng.random() < 0.3:  # darker (shadowed, tanned) or lighter lower face
        region = np.zeros((CANVAS, CANVAS), np.float32)
        cv2.rectangle(region, (0, int(u(74, 84))), (CANVAS, CANVAS), 1.0, -1)
        tex += (cv2.GaussianBlur(region, (0, 0), 7.0) * u(-0.16, 0.08))[:, :, None]
    if d["nose_shade"] > 0:  # one flank of the nose in shadow
        shade = np.zeros((CANVAS, CANVAS), np.float32)
        side = 1.0 if rng.random() < 0.5 else -1.0
        _ellipse(shade, (cx + side * 4.5, 64.0), (2.5, 9.0), 0, 1.0)
        tex -= (cv2.GaussianBlur(shade, (0, 0), 1.5) * d["nose_shade"])[:, :, None]
    if rng.random() < 0.07:  # scar
        x, y, a = cx + u(-25, 25), u(40, 95), u(0, np.pi)
        _line(tex, [[x, y], [x + 7 * np.cos(a), y + 7 * np.sin(a)]], (0.18, 0.1, 0.1))
    face = np.zeros((CANVAS, CANVAS), np.float32)
    cv2.fillPoly(face, [_fx(d["outline"])], 1.0, _AA, _SHIFT)
    return tex * face[:, :, None]


def _hair_shapes(d):
    """(back, [front polygons]) of the hair; back is None unless the hair is long."""
    cx, cy, ax = d["cx"], d["cy"], d["ax"]
    style = d["hair_style"]
    vol = d["hair_vol"]
    amp, freq, phase = d["hair_bumps"]
    top = cy - d["ay_top"]
    sb = d["sideburn_y"]
    cy_h = min(cy, sb - 2.0)
    t = np.linspace(np.pi, 2 * np.pi, 33)
    rx, ry = ax * vol + 1.0, (cy_h - top) + (vol - 1.0) * d["ay_top"] + 1.0
    bump = amp * (0.5 + 0.5 * np.sin(freq * t + phase))
    outer = np.stack([cx + (rx + bump) * np.cos(t), cy_h + (ry + bump) * np.sin(t)], 1)
    back = None
    if style == "long":
        w = ax * vol + d["long_w"]
        back = np.concatenate([outer, [[cx + w, d["long_len"]], [cx - w, d["long_len"]]]])
    if style == "bald":  # a crescent of hair along each side of the head, above the ears
        out = d["outline"]
        front = []
        for s in (-1, 1):
            side = out[(np.sign(out[:, 0] - cx) == s) & (out[:, 1] > cy - 0.55 * d["ay_top"]) & (out[:, 1] < sb)]
            side = side[np.argsort(side[:, 1])]
            outer = (side - [cx, cy]) * [1.05, 1.0] + [cx, cy]
            inner = side - [s * 3.5, 0.0]
            front.append(np.concatenate([outer, inner[::-1]]))
        return back, front
    xs = np.linspace(0.9, -0.9, 25) * ax
    rel = xs / ax
    y = d["hairline_y"] + d["hairline_curv"] * rel ** 2 + d["hairline_tilt"] * rel
    y = y + d["widow_peak"] * np.exp(-(xs / 5.0) ** 2)
    y = y - d["recede"] * np.exp(-((np.abs(rel) - 0.5) / 0.2) ** 2)
    y = np.clip(y, top + 3.0, sb)
    hairline = np.stack([cx + xs, y], 1)
    sw = d["sideburn_w"]
    right = [[cx + rx, sb], [cx + ax * sw, sb]]
    left = [[cx - ax * sw, sb], [cx - rx, sb]]
    front = [np.concatenate([outer, right, hairline, left])]
    if style == "long":  # strands falling in front of the ears
        for s in (-1, 1):
            x0, x1 = cx + s * (ax * vol + 1.0), cx + s * (ax - 3.0)
            front.append(np.array([[x0, cy_h], [x0, d["long_len"] - 8], [x1, d["long_len"] - 14], [x1, cy_h]]))
    return back, front


def _mouth_curves(d, lc, rc, smile, opening):
    """x and the y of: mouth line, upper-lip top, upper inner edge, lower inner edge, lower-lip bottom."""
    x = lc[0] + (rc[0] - lc[0]) * _U13
    line = lc[1] + (rc[1] - lc[1]) * _U13 + (d["mouth_curve"] + smile) * _PAR13
    o = opening * _ENV13 / 2
    top = line - d["lip_up"] * _ENV13 + d["lip_bow"] * _BOW13
    return x, line, top, line - o, line + o, line + o + d["lip_lo"] * _ENV13


def _draw_nose(img, d, c):
    cx, ty = d["lmk"][2]
    w = d["nose_w"]
    if d["nose_bridge"]:
        for s in ((-1,) if d["nose_bridge"] == 1 else (-1, 1)):
            _line(img, [[cx + s * 3.0, 56.0], [cx + s * 3.2, ty - 8], [cx + s * w * 0.55, ty - 3]], c["bridge"])
    for s in (-1, 1):
        start = 0 if s > 0 else 180
        _ellipse(img, (cx + s * w * 0.7, ty - 0.5), (w * 0.4, w * 0.38), 0, c["nose"], 1, start - 90, start + 90)
        _ellipse(img, (cx + s * w * 0.38, ty + 0.8), (d["nostril"], d["nostril"] * 0.55), s * 15, c["nostril"])
    if d["nose_tip"]:
        _ellipse(img, (cx, ty - 0.5), (w * 0.45, w * 0.4), 0, c["nose"], 1, 20, 160)


def _draw_beard(img, d, c):
    cx, cy = d["cx"], d["cy"]
    out = d["outline"]
    lc, rc = d["lmk"][3], d["lmk"][4]
    lip_bottom = _mouth_curves(d, lc, rc, 0.0, 0.0)[5].max()
    style = d["beard"]
    if style == "full":
        lower = (out[out[:, 1] >= cy + 2.0] - [cx, cy]) * 1.03 + [cx, cy]  # right -> chin -> left
        y_in = lip_bottom + d["beard_lo"]
        inner = [[lower[-1][0] + 5, cy + 4], [lc[0] - 4, lc[1] - 1], [cx - 6, y_in], [cx + 6, y_in],
                 [rc[0] + 4, rc[1] - 1], [lower[0][0] - 5, cy + 4]]
        _poly(img, np.concatenate([lower, inner]), c["beard"])
    elif style == "goatee":
        chin = out[(out[:, 1] > lip_bottom + 4) & (np.abs(out[:, 0] - cx) < d["beard_w"] + 1)]
        w = d["beard_w"]
        _poly(img, np.concatenate([[[cx + w, lip_bottom + 1]], chin + [0, 1.5], [[cx - w, lip_bottom + 1]]]),
              c["beard"])
    elif style == "chinstrap":
        _line(img, out[out[:, 1] >= cy + 6.0], c["beard"], 3)


def _static_layers(d, tex):
    """Pre-render what never moves: (premultiplied base uint8 [112,112,3], 255 * (1 - alpha) uint8 [112,112])."""
    c = d["c"]
    rgb = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    alpha = np.zeros((CANVAS, CANVAS), np.uint8)
    cx, cy, ax = d["cx"], d["cy"], d["ax"]
    neck = [[cx - ax * 0.5, cy], [cx + ax * 0.5, cy], [cx + ax * 0.55, 130], [cx - ax * 0.55, 130]]
    ew, eh, ey = d["ear"]
    if d["back_hair"] is not None:
        _poly(rgb, d["back_hair"], c["hair_back"])
        _poly(alpha, d["back_hair"], 255)
    _poly(rgb, neck, c["neck"])
    _poly(alpha, neck, 255)
    for s in (-1, 1):
        _ellipse(rgb, (cx + s * (ax - 1.5), ey), (ew, eh), s * 8, c["ear"])
        _ellipse(alpha, (cx + s * (ax - 1.5), ey), (ew, eh), s * 8, 255)
        _ellipse(rgb, (cx + s * (ax + 0.5), ey), (ew * 0.45, eh * 0.6), s * 8, c["ear_in"], 1)
    _poly(rgb, d["outline"], c["skin"])
    _poly(alpha, d["outline"], 255)
    rgb = (rgb * (1.0 + tex)).clip(0, 255).astype(np.uint8)
    if d["chin_cleft"]:
        chin_y = d["outline"][:, 1].max()
        _line(rgb, [[cx, chin_y - 6], [cx, chin_y - 2.5]], c["cleft"])
    _draw_nose(rgb, d, c)
    if d["dimples"]:
        for i, s in ((3, -1), (4, 1)):
            x, y = d["lmk"][i]
            start = 90 if s < 0 else -90  # the outer half of a small ellipse: "(" left, ")" right
            _ellipse(rgb, (x + s * 3.0, y), (1.2, 2.5), 0, c["cleft"], 1, start, start + 180)
    if d["beard"] in ("full", "goatee", "chinstrap"):
        _draw_beard(rgb, d, c)
        _draw_beard(alpha, d, {"beard": 255})
    # Anti-aliased edges were blended with black, so rgb is (approximately) alpha-premultiplied.
    return rgb, 255 - alpha


def sample_identity(rng):
    """Everything fixed for one synthetic person: a dict of parameters, colours and cached layers."""
    d = _sample_params(rng)
    tex = _skin_texture(d, rng)
    skin = d["skin"]
    d["c"] = {
        "skin": _col(skin), "neck": _col(skin * 0.8), "ear": _col(skin * 0.92), "ear_in": _col(skin * 0.75),
        "cleft": _col(skin * 0.78), "crease": _col(skin * 0.78), "bags": _col(skin * 0.88),
        "lower_lid": _col(skin * 0.7), "bridge": _col(skin * 0.85),
        "nose": _col(d["nose_col"]), "nostril": _col(d["nose_col"] * 0.6),
        "hair": _col(d["hair"]), "hair_back": _col(d["hair"] * 0.85), "brow": _col(d["brow"]),
        "lip": _col(d["lip"]), "lip_lo": _col(d["lip"] * 1.08), "lip_line": _col(d["lip"] * 0.55),
        "beard": _col(d["beard_col"]), "sclera": _col(d["sclera"]), "iris": _col(d["iris"]),
    }
    d["back_hair"], front = _hair_shapes(d)
    d["front_hair"] = [_fx(p) for p in front]
    d["base"], d["inv_alpha"] = _static_layers(d, tex)
    return d


# --------------------------------------------------------------------------- one photo

_DARK = (35.0, 25.0, 25.0)
_PUPIL = (15.0, 12.0, 12.0)
_GLINT = (250.0, 250.0, 250.0)
_MOUTH_IN = (70.0, 22.0, 28.0)
_TEETH = (236.0, 232.0, 220.0)


def _background(rng):
    c = rng.uniform(0, 255, (2, 1, 3))
    if rng.random() < 0.5:  # greyish
        c = c.mean(axis=2, keepdims=True) * rng.uniform(0.9, 1.1, (2, 1, 3))
    img = cv2.resize(np.clip(c, 0, 255).astype(np.uint8), (CANVAS, CANVAS), interpolation=cv2.INTER_LINEAR)
    _ellipse(img, (56 + rng.uniform(-6, 6), 142), (rng.uniform(60, 75), 34), 0, _col(rng.uniform(0, 255, 3)))
    return img


def _draw_eye(img, d, c, ctr, side, eye_open, gaze):
    w, h = d["eye_w"], d["eye_h"] * eye_open
    ang = -side * d["eye_tilt"]
    if d["eye_bags"]:
        _ellipse(img, (ctr[0], ctr[1] + h + 1.2), (w * 0.8, 1.5), ang, c["bags"], 1, 10, 170)
    if d["crease"] > 0:
        _ellipse(img, ctr, (w * 1.05, d["eye_h"] + d["crease"]), ang, c["crease"], 1, 195, 345)
    if h < 0.8:  # blink
        _ellipse(img, ctr, (w, 1.0), ang, _DARK, d["lid_t"], 0, 180)
        return
    _ellipse(img, ctr, (w, h), ang, c["sclera"])
    ir = min(d["iris_r"], h * 1.15)
    ic = (ctr[0] + gaze[0], ctr[1] + gaze[1])
    _ellipse(img, ic, (ir, ir), 0, c["iris"])
    _ellipse(img, ic, (ir * d["pupil"], ir * d["pupil"]), 0, _PUPIL)
    _ellipse(img, (ic[0] - ir * 0.35, ic[1] - ir * 0.35), (0.6, 0.6), 0, _GLINT)
    _ellipse(img, ctr, (w + 0.3, h + 0.3), ang, c["lower_lid"], 1, 10, 170)
    _ellipse(img, ctr, (w + 0.3, h + 0.3), ang, _DARK, d["lid_t"], 180, 360)
    if d["lashes"]:
        r = _LASH_A + np.deg2rad(ang)
        p0 = np.stack([ctr[0] + w * np.cos(r), ctr[1] + h * np.sin(r)], 1)
        p1 = p0 + np.stack([side * 0.6 + np.cos(r) * 0.8, np.full(4, -2.0)], 1)
        cv2.polylines(img, list(_fx(np.stack([p0, p1], 1))), False, _DARK, 1, _AA, _SHIFT)


def _draw_brow(img, d, c, eye_c, side, raise_, frown):
    x = d["cx"] + side * (d["brow_inner"] + _U9 * d["brow_len"])
    pk = d["brow_peak"]
    arch = d["brow_arch"] * np.clip(1.0 - ((_U9 - pk) / max(pk, 1.0 - pk)) ** 2, 0, 1)
    y = eye_c[1] - d["brow_gap"] - arch - d["brow_tilt"] * _U9 - raise_ + frown * (1.0 - _U9)
    th = d["brow_t"] * (1.0 - (1.0 - d["brow_taper"]) * _U9) / 2
    pts = np.concatenate([np.stack([x, y - th], 1), np.stack([x, y + th], 1)[::-1]])
    _poly(img, pts, c["brow"])


def _draw_mouth(img, d, c, lc, rc, smile, opening):
    x, line, top, up_in, lo_in, bottom = _mouth_curves(d, lc, rc, smile, opening)

    def strip(y0, y1):
        return np.concatenate([np.stack([x, y0], 1), np.stack([x, y1], 1)[::-1]])

    if opening > 0.5:
        _poly(img, strip(up_in, lo_in), _MOUTH_IN)
        _poly(img, strip(up_in, np.minimum(up_in + 1.6, lo_in)), _TEETH)
    _poly(img, strip(top, up_in), c["lip"])
    _poly(img, strip(lo_in, bottom), c["lip_lo"])
    _line(img, np.stack([x, line if opening <= 0.5 else up_in], 1), c["lip_line"])
    if d["beard"] in ("moustache", "full"):
        pts = strip(top - 0.3, top - d["moustache_t"] - 1.0)
        pts[0, 0] -= 2.0
        pts[len(x) - 1, 0] += 2.0
        _poly(img, pts, c["beard"])


def _draw_glasses(img, d):
    g = d["glasses"]
    col = _col(g["col"])
    eyes = d["lmk"][:2]
    inner = g["r"] + (0.0 if g["round"] else 1.0)
    for (x, y), s in zip(eyes, (-1, 1)):
        if g["round"]:
            _ellipse(img, (x, y), (g["r"], g["r"]), 0, col, g["t"])
        else:
            r, hr = g["r"] + 1.0, g["hr"]
            _line(img, [[x - r, y - hr], [x + r, y - hr], [x + r, y + hr], [x - r, y + hr]], col, g["t"], True)
        _line(img, [[x + s * inner, y - 1.5], [d["cx"] + s * d["ax"], y - 3.0]], col, g["t"])
    _line(img, [[eyes[0][0] + inner, eyes[0][1] - 1.0], [eyes[1][0] - inner, eyes[1][1] - 1.0]], col, g["t"])


def _draw_hat(img, d, rng):
    """A cap or beanie over the hair: a per-photo occluder of upper-face identity cues."""
    cx, ax = d["cx"], d["ax"]
    u = rng.uniform
    brim = min(d["hairline_y"] + u(-4.0, 6.0), 36.0)
    col = rng.uniform(0, 255, 3)
    top = d["cy"] - d["ay_top"] - 8.0
    _ellipse(img, (cx, brim), (ax * d["hair_vol"] + 3.0, brim - top), 0, _col(col), -1, 180, 360)
    band = [[cx - ax * d["hair_vol"] - 4.0, brim - u(3.0, 6.0)], [cx + ax * d["hair_vol"] + 4.0, brim - 4.0],
            [cx + ax * d["hair_vol"] + 4.0, brim + 1.0], [cx - ax * d["hair_vol"] - 4.0, brim + 1.0]]
    _poly(img, band, _col(col * 0.7))


def render(d, rng):
    """One photo of identity d: (uint8 [112, 112, 3] RGB, float32 [5, 2] landmarks)."""
    u = rng.uniform
    bg = _background(rng)
    inv_alpha = cv2.merge([d["inv_alpha"]] * 3)
    img = cv2.add(cv2.multiply(bg, inv_alpha, scale=1.0 / 255.0), d["base"])
    c = d["c"]

    # Expression.
    eye_open = 0.1 if rng.random() < 0.04 else u(0.75, 1.1)
    gaze = (u(-1.2, 1.2), u(-0.6, 0.6))
    brow_raise = u(-1.0, 2.5)
    frown = u(0.0, 2.0) if rng.random() < 0.3 else 0.0
    smile = u(-1.0, 2.5)
    opening = u(1.0, 4.5) if rng.random() < 0.2 else 0.0

    lmk = d["lmk"].copy()
    lmk[3:, 1] -= max(smile, 0.0) * 0.4  # smiling lifts the corners; the landmarks follow them
    _draw_mouth(img, d, c, lmk[3], lmk[4], smile, opening)
    for i, s in ((0, -1), (1, 1)):
        _draw_eye(img, d, c, lmk[i], s, eye_open, gaze)
        _draw_brow(img, d, c, lmk[i], s, brow_raise, frown)
    cv2.fillPoly(img, d["front_hair"], c["hair"], _AA, _SHIFT)
    if rng.random() < 0.1:
        _draw_hat(img, d, rng)
    if d["glasses"] is not None:
        _draw_glasses(img, d)

    # Pose: a small similarity transform about the nose tip.
    M = cv2.getRotationMatrix2D((float(lmk[2, 0]), float(lmk[2, 1])), u(-8.0, 8.0), u(0.93, 1.07))
    M[:, 2] += u(-3.0, 3.0, 2)
    img = cv2.warpAffine(img, M, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    lmk = lmk @ M[:, :2].T + M[:, 2]

    # Lighting: brightness, a linear gradient, a colour cast; then sensor noise and sometimes blur.
    th = u(0, 2 * np.pi)
    g = u(0.0, 0.35)
    b = u(0.8, 1.12)
    light = cv2.addWeighted(_GX3, b * g * np.cos(th), _GY3, b * g * np.sin(th), b)
    cast = tuple(u(0.93, 1.07, 3)) + (1.0,)
    lit = cv2.multiply(cv2.multiply(img, light, dtype=cv2.CV_32F), cast)
    oy, ox = rng.integers(0, 64, 2)
    img = cv2.addWeighted(lit, 1.0, _NOISE[oy:oy + CANVAS, ox:ox + CANVAS], u(1.0, 6.0), 0.0, dtype=cv2.CV_8U)
    if rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (0, 0), u(0.5, 1.1))
    return img, lmk.astype(np.float32)

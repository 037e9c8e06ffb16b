"""Synthetic face masks for aligned 112x112 faces (and any image with five landmarks).

How it is fast: masks are drawn ahead of time. For every (style, wear position) a *template
bank* holds K (default 64) random mask geometries rendered in the aligned ArcFace frame by
``mask_styles.render_group`` (styles are registered in ``mask_styles.MASK_STYLES``): a
colour-neutral uint8 code image (luminance/relief, pattern level or texture) and a uint8 alpha. The bank is built once per (bank_seed, style, position, size, K)
and cached for the process (all 18 groups take well under a second). Masking one face is then:

    pick a template (style, position, index)   -- geometry randomness: K per style x position
    shift it by an integer (dy, dx) in [-2, 2] px, by slicing the padded template (jitter)
    colour it with a per-face 256-entry lookup table (palette colour, brightness, channel
        jitter, scene brightness of the face) -- one cv2.LUT on the code image
    alpha-blend it onto the face rows it can cover -- one cv2.blendLinear

All randomness of a face comes from ``PARAMS_PER_FACE`` uniforms drawn in one block
``rng.random((N, PARAMS_PER_FACE))``; because a Generator fills such a block row after row,
``apply_batch(imgs, rng)`` gives exactly the same bytes as calling ``apply`` on each image in
turn with the same generator.
"""
import threading
import zlib

import cv2
import numpy as np

from ..errors import ConfigError, DataError
from ..data.align import alignment_matrix, check_landmarks_in_image
from .styles import KINDS, MASK_POSITIONS, MASK_STYLES, SHADE_MAX, default_styles, mask_style, render_group

PARAMS_PER_FACE = 11
# How often each wear position is drawn (renormalised over the positions a synthesizer uses).
POSITION_WEIGHTS = {"normal": 0.5, "high": 0.25, "low": 0.25}

# Code-image encodings, indexed by a style's position in mask_styles.KINDS.
_KIND_PLAIN, _KIND_PATTERN, _KIND_TEXTURE = (KINDS.index(k) for k in ("plain", "pattern", "texture"))


def _shade_tables():
    """Per kind: shade factor and pattern level for each of the 256 code values."""
    v = np.arange(256, dtype=np.float32)
    sh = np.empty((len(KINDS), 256), np.float32)
    lev = np.zeros((len(KINDS), 256), np.float32)
    sh[_KIND_PLAIN] = v / 255.0 * SHADE_MAX
    sh[_KIND_TEXTURE] = v / 255.0 * SHADE_MAX
    sh[_KIND_PATTERN] = (v % 64) / 63.0 * SHADE_MAX
    lev[_KIND_PATTERN] = np.floor(v / 64) / 3.0
    return sh, lev


_SHADE_TABLE, _LEVEL_TABLE = _shade_tables()


class _Group:
    """K templates of one (style, position): alpha uint8 [K, h, W+2J] and code uint8
    [K, h, W+2J] (one channel: shade, or pattern level * 64 + shade) or [K, h, W+2J, 3]
    (textured: texture x shade per channel).

    Element [., i, j] is pixel (row0 + i, col0 + j) of the aligned frame; the arrays reach beyond
    the crop (J more on each side, plus the mask's part under the chin and its ear loops, for
    apply_landmarks). Rows above ``row0 + 2J`` carry no alpha, so output rows above
    ``out_row = row0 + J`` are never touched by a template shifted by <= J pixels.
    """

    def __init__(self, style, style_index, position, k, size, pad, seed):
        rng = np.random.default_rng([seed, style_index, MASK_POSITIONS.index(position), size])
        layers = render_group(style, position, k, size, pad, rng)
        alpha, shade, level, tex = layers["alpha"], layers["shade"], layers["level"], layers["tex"]
        alpha[:, :2 * pad] = 0.0
        self.kind = KINDS.index(style.kind)
        kk, h, w = alpha.shape
        # cv2.convertScaleAbs: round(|x * scale|) saturated to uint8, in one pass (inputs are >= 0)
        if self.kind == _KIND_PATTERN:
            lev = cv2.convertScaleAbs(level.reshape(kk * h, w), alpha=3.0)
            code = (lev << 6) | cv2.convertScaleAbs(shade.reshape(kk * h, w), alpha=63.0 / SHADE_MAX)
        elif self.kind == _KIND_TEXTURE:
            tex *= shade[..., None]
            code = cv2.convertScaleAbs(tex.reshape(kk * h, w, 3), alpha=255.0 / SHADE_MAX)
        else:
            code = cv2.convertScaleAbs(shade.reshape(kk * h, w), alpha=255.0 / SHADE_MAX)
        self.code = code.reshape((kk, h, w) + code.shape[2:])
        self.alpha = cv2.convertScaleAbs(alpha.reshape(kk * h, w), alpha=255.0).reshape(kk, h, w)
        self.row0, self.col0 = layers["row0"], layers["col0"]
        self.out_row = self.row0 + pad
        self.style, self.position, self.pad = style.name, position, pad


_GROUPS = {}
_GROUPS_LOCK = threading.Lock()


def template_group(style, position, k=64, size=112, pad=2, seed=0):
    """The cached template group of one (style name, position); built on first use.

    The bank's generator is seeded with the style's index in MASK_STYLES (registry order).
    """
    definition = mask_style(style)
    index = list(MASK_STYLES).index(style)
    key = (definition, index, position, int(k), int(size), int(pad), int(seed))
    with _GROUPS_LOCK:
        group = _GROUPS.get(key)
        if group is None:
            group = _GROUPS[key] = _Group(definition, index, position, k, size, pad, seed)
    return group


def _check_names(names, allowed, what):
    names = tuple(names)
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ConfigError(f"unknown mask {what} {bad or names!r}; choose from {', '.join(allowed)}")
    return names


def _palette_array(style):
    return np.asarray(MASK_STYLES[style].palette, np.float32)


class MaskSynthesizer:
    """Draws synthetic masks onto faces.

    styles: subset of MASK_STYLES (None: styles.default_styles(), every style not made for experiments); size: aligned crop side (templates are drawn in
    the ArcFace frame scaled to it); positions: subset of ("normal", "high", "low"), drawn with
    POSITION_WEIGHTS. templates_per_group (K) and bank_seed fix the template bank; jitter is the
    largest per-face integer shift in pixels (at 112; scaled with size). match_brightness scales
    the mask colour by the face's upper-face luminance (factor in [0.62, 1.1]) so that masks on
    dark photos are not glowing. Output depends only on the images and the rng state.
    """

    def __init__(self, styles=None, size=112, positions=("normal", "high", "low"), *,
                 templates_per_group=64, bank_seed=0, jitter=2, match_brightness=True):
        known = tuple(MASK_STYLES)
        self.styles = _check_names(default_styles() if styles is None else (styles,) if isinstance(styles, str)
                                   else styles, known, "style")
        self.positions = _check_names(MASK_POSITIONS if positions is None else (positions,)
                                      if isinstance(positions, str) else positions, MASK_POSITIONS, "position")
        if int(size) < 32:
            raise ConfigError(f"mask size must be >= 32 pixels, got {size}")
        self.size = int(size)
        self.k = int(templates_per_group)
        self.bank_seed = int(bank_seed)
        self.pad = max(0, int(round(jitter * self.size / 112.0)))
        self.match_brightness = bool(match_brightness)
        w = np.asarray([POSITION_WEIGHTS[p] for p in self.positions], np.float64)
        self._pos_cdf = np.cumsum(w / w.sum())
        self._pos_cdf[-1] = 1.0
        self._groups = None
        pals = [_palette_array(s) for s in self.styles]
        self._palette_sizes = np.asarray([len(p) for p in pals])
        self._palettes = np.zeros((len(pals), self._palette_sizes.max(), 3), np.float32)
        for i, pal in enumerate(pals):
            self._palettes[i, :len(pal)] = pal
        self._kinds = np.asarray([KINDS.index(MASK_STYLES[s].kind) for s in self.styles])

    def __getstate__(self):
        # the bank is per process (rebuilt or fetched from the process cache): do not pickle it
        state = dict(self.__dict__)
        state["_groups"] = None
        return state

    # ---------------------------------------------------------------- bank
    @property
    def groups(self):
        """Template groups, [style index][position index] -> _Group (built on first use)."""
        if self._groups is None:
            self._groups = [[template_group(s, p, self.k, self.size, self.pad, self.bank_seed)
                             for p in self.positions] for s in self.styles]
        return self._groups

    def warmup(self):
        """Build (or fetch from the process cache) the template bank now; returns self."""
        _ = self.groups
        return self

    # ---------------------------------------------------------------- parameters
    @staticmethod
    def _forced(drawn, names, allowed, n, what):
        """Replace drawn indices by requested names: None, one name, or a list of N names/None."""
        if names is None:
            return drawn
        if isinstance(names, str):
            names = [names] * n
        names = list(names)
        if len(names) != n:
            raise ConfigError(f"got {len(names)} {what}s for {n} images; give one per image, one name, or None")
        out = drawn.copy()
        for i, name in enumerate(names):
            if name is None:
                continue
            if name not in allowed:
                raise ConfigError(f"mask {what} {name!r} is not one of this synthesizer's {what}s {allowed}")
            out[i] = allowed.index(name)
        return out

    def _draw(self, n, rng, styles, positions=None):
        """Per-face choices from one block of uniforms: style, position, template, shift, LUT."""
        return self._choices(rng.random((n, PARAMS_PER_FACE)), styles, positions)

    def _choices(self, u, styles, positions=None):
        """Per-face choices from uniforms u [N, PARAMS_PER_FACE] (see _draw)."""
        n = u.shape[0]
        si = np.minimum((u[:, 0] * len(self.styles)).astype(np.int64), len(self.styles) - 1)
        si = self._forced(si, styles, self.styles, n, "style")
        pi = np.minimum(np.searchsorted(self._pos_cdf, u[:, 1], side="right"), len(self.positions) - 1)
        pi = self._forced(pi, positions, self.positions, n, "position")
        ti = np.minimum((u[:, 2] * self.k).astype(np.int64), self.k - 1)
        span = 2 * self.pad + 1
        dy = np.minimum((u[:, 3] * span).astype(np.int64), span - 1) - self.pad
        dx = np.minimum((u[:, 4] * span).astype(np.int64), span - 1) - self.pad
        # palette colours: c1 any entry, c2 a different entry (used by two-colour styles)
        size = self._palette_sizes[si]
        j1 = np.minimum((u[:, 5] * size).astype(np.int64), size - 1)
        others = np.maximum(size - 1, 1)
        j2 = (j1 + 1 + np.minimum((u[:, 6] * others).astype(np.int64), others - 1)) % size
        jitter = ((0.85 + 0.25 * u[:, 7:8]) * (0.94 + 0.12 * u[:, 8:11])).astype(np.float32)
        c1 = self._palettes[si, j1] * jitter
        c2 = self._palettes[si, j2] * jitter
        return si, pi, ti, dy, dx, c1, c2

    def _brightness(self, imgs):
        """Scene-brightness factor per face [N] from the upper face (rows the masks never cover)."""
        n = imgs.shape[0]
        if not self.match_brightness:
            return np.ones(n, np.float32)
        s = self.size / 112.0
        y0, y1, x0, x1 = int(24 * s), int(56 * s), int(24 * s), int(88 * s)
        step = max(1, int(round(4 * s)))
        patch = imgs[:, y0:y1:step, x0:x1:step].astype(np.float32)
        lum = patch.mean(axis=(1, 2)) @ np.asarray([0.299, 0.587, 0.114], np.float32)
        return np.minimum(np.maximum((lum / 125.0) ** 0.4, 0.62), 1.1).astype(np.float32)

    def _luts(self, si, c1, c2, gain):
        """Per-face colour lookup tables uint8 [N, 256, 3] mapping code values to RGB."""
        kind = self._kinds[si]
        g = gain[:, None, None]
        sh = _SHADE_TABLE[kind][:, :, None]                   # [N, 256, 1]
        lut = sh * (c1[:, None, :] * g)                       # [N, 256, 3]
        pat = np.flatnonzero(kind == _KIND_PATTERN)
        if pat.size:  # two-colour styles: mix toward the second colour by pattern level
            lev = _LEVEL_TABLE[_KIND_PATTERN][None, :, None]
            lut[pat] += (sh[pat] * lev) * ((c2[pat] - c1[pat])[:, None, :] * g[pat])
        lut += (110.0 * g) * np.maximum(sh - 1.0, 0.0)        # faint sheen on highlights
        lut += 0.5                                            # round, as truncation follows
        np.minimum(lut, 255.0, out=lut)  # every term is >= 0
        return lut.astype(np.uint8)

    # ---------------------------------------------------------------- masking
    def _check_batch(self, imgs):
        imgs = np.asarray(imgs)
        if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[1:] != (self.size, self.size, 3):
            raise DataError(f"expected aligned uint8 faces [N, {self.size}, {self.size}, 3], got "
                            f"{imgs.dtype} {tuple(imgs.shape)}; align faces first (align.align_face) "
                            "or use apply_landmarks")
        return imgs

    def _template(self, si, pi, ti, dy, dx, lut, whole=False):
        """Coloured, shifted template: (colour uint8 [h, w, 3], alpha uint8 [h, w], (y0, x0)),
        covering aligned-frame rows y0.. and columns x0..: the crop's rows from the template's
        first possible row (``whole=False``), or the whole mask including what lies outside the
        crop (``whole=True``)."""
        g = self.groups[si][pi]
        y0 = g.out_row
        if whole:
            x0 = g.col0 + self.pad
            y1, x1 = g.row0 + g.alpha.shape[1] - self.pad, g.col0 + g.alpha.shape[2] - self.pad
        else:
            x0, y1, x1 = 0, self.size, self.size
        rows = slice(y0 - dy - g.row0, y1 - dy - g.row0)
        cols = slice(x0 - dx - g.col0, x1 - dx - g.col0)
        code = g.code[ti, rows, cols]
        if code.ndim == 2:  # one-channel code -> RGB through the 256-entry table
            color = cv2.applyColorMap(code, lut.reshape(256, 1, 3))
        else:               # textured: per-channel table on the RGB code
            color = cv2.LUT(code, lut.reshape(1, 256, 3))
        return color, g.alpha[ti, rows, cols], (y0, x0)

    def apply_batch(self, imgs, rng, styles=None, positions=None):
        """Mask a batch of aligned faces.

        imgs: uint8 [N, size, size, 3] RGB; rng: np.random.Generator (consumed: N x
        PARAMS_PER_FACE uniforms); styles / positions: None (random per face), one name, or a
        list of N names/None. Returns (masked uint8 [N, size, size, 3], alpha float32
        [N, size, size] in [0, 1]). Faces are independent: identical to ``apply`` on each face
        in order with the same generator.
        """
        imgs = self._check_batch(imgs)
        return self.apply_uniforms(imgs, rng.random((imgs.shape[0], PARAMS_PER_FACE)), styles, positions)

    def apply_uniforms(self, imgs, u, styles=None, positions=None):
        """``apply_batch`` with each face's uniforms given: u float64 [N, PARAMS_PER_FACE] in [0, 1).

        Row i is what ``rng.random(PARAMS_PER_FACE)`` would give face i, so faces whose draws come
        from different generators (one per dataset item) are masked in one call, with the bytes
        ``apply(img_i, rng_i)`` gives each of them.
        """
        imgs = self._check_batch(imgs)
        u = np.asarray(u, np.float64)
        n = imgs.shape[0]
        if u.shape != (n, PARAMS_PER_FACE):
            raise DataError(f"expected uniforms [{n}, {PARAMS_PER_FACE}], got {u.shape}")
        si, pi, ti, dy, dx, c1, c2 = self._choices(u, styles, positions)
        luts = self._luts(si, c1, c2, self._brightness(imgs))
        out = imgs.copy()
        alphas = np.zeros((n, self.size, self.size), np.float32)
        for i in range(n):
            color, a8, (r, _) = self._template(si[i], pi[i], ti[i], dy[i], dx[i], luts[i])
            np.multiply(a8, np.float32(1.0 / 255.0), out=alphas[i, r:], dtype=np.float32)
            _blend_u8(out[i, r:], color, a8)
        return out, alphas

    def apply(self, img, rng, style=None, position=None):
        """Mask one aligned face: uint8 [size, size, 3] -> (masked uint8 [size, size, 3],
        alpha float32 [size, size] in [0, 1]). style / position: None draws one."""
        img = np.asarray(img)
        if img.ndim != 3:
            raise DataError(f"expected one aligned uint8 face [{self.size}, {self.size}, 3], got shape {img.shape}")
        masked, alpha = self.apply_batch(img[None], rng, None if style is None else [style],
                                         None if position is None else [position])
        return masked[0], alpha[0]

    def apply_landmarks(self, img, landmarks5, rng, style=None, position=None, where="landmarks"):
        """Mask a face in an image of any size, located by its five landmarks [5, 2].

        The template drawn for the aligned frame (same rng use as ``apply``), including its parts
        outside the crop (under the chin, ear loops), is warped onto the image with the inverse
        of the alignment similarity. Returns (masked uint8 [H, W, 3], alpha float32 [H, W] in
        [0, 1]). Mask detail is that of a ``size`` crop: for large faces build the synthesizer
        with a larger ``size``. Landmarks far outside the image are refused, naming ``where``.
        """
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise DataError(f"expected a uint8 [H, W, 3] image, got {img.dtype} {img.shape}")
        lmk = np.asarray(landmarks5, np.float64)
        if lmk.shape != (5, 2):
            raise DataError(f"expected five landmarks [5, 2], got shape {lmk.shape}")
        check_landmarks_in_image(lmk, img.shape, where)
        m = alignment_matrix(lmk, self.size)                 # image -> aligned crop
        s = self.size
        aligned = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        si, pi, ti, dy, dx, c1, c2 = self._draw(1, rng, None if style is None else [style],
                                                None if position is None else [position])
        lut = self._luts(si, c1, c2, self._brightness(aligned[None]))[0]
        color, a8, (y0, x0) = self._template(si[0], pi[0], ti[0], dy[0], dx[0], lut, whole=True)
        alpha = a8 * np.float32(1.0 / 255.0)
        to_template = m.copy()
        to_template[:, 2] -= (x0, y0)                        # image -> template array pixels
        h, w = img.shape[:2]
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped_c = cv2.warpAffine(color, to_template, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        warped_a = cv2.warpAffine(alpha, to_template, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
        np.clip(warped_a, 0.0, 1.0, out=warped_a)
        out = cv2.blendLinear(img, warped_c, 1.0 - warped_a, warped_a)
        return out, warped_a


def _blend_u8(region, color, a8):
    """In place: region = region * (255 - a) / 255 + color * a / 255, uint8 [h, w, 3], a uint8 [h, w].

    Two rounded products then a saturated sum: within 1 grey level of the exact blend, and
    exact where a is 0 (region kept) or 255 (color). ~2.5x faster than cv2.blendLinear here.
    """
    a3 = cv2.cvtColor(a8, cv2.COLOR_GRAY2RGB)
    kept = cv2.multiply(region, cv2.bitwise_not(a3), scale=1.0 / 255.0)
    cover = cv2.multiply(color, a3, scale=1.0 / 255.0)
    cv2.add(kept, cover, dst=region)


def rng_for(seed, key):
    """A Generator for one item, from a global seed and a stable key (e.g. a relative path)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(key).encode("utf-8"))])

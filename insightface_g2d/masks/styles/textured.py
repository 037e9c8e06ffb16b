"""Textured mask: a surgical-mask sheet wearing a photo texture (insightface's mask images,
or procedural non-woven textures where insightface is not installed)."""
import functools
import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np

from .drawing import coverage, cylinder, ear_loops, sheet, uniform
from .style import MaskStyle


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


def procedural_textures(rng, n=4):
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


def render(grid, k, rng, position):
    g = sheet(grid, k, rng, position, hw=(40.0, 45.0), p_t=(1.2, 1.8), d_ts=(3.0, 9.0),
              p_b=(1.8, 2.8), inset=(0.08, 0.2))
    alpha = coverage(g["sd"], grid, uniform(rng, k, 1.0, 1.8))
    textures = insightface_mask_textures() or procedural_textures(rng)
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
    shade = cylinder(g["u"], rng, k, ambient=(0.6, 0.75)) * (1.0 - uniform(rng, k, 0.05, 0.18) * g["v"] ** 2)
    shade = np.array(np.broadcast_to(shade, alpha.shape), dtype=np.float32)
    ear_loops(grid, k, rng, g, shade, alpha)
    return alpha, shade, None, tex


STYLE = MaskStyle("textured", render, ((255, 255, 255),), kind="texture")  # the texture carries the colour

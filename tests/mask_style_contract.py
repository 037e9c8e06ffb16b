"""What every registered mask style must do (used by test_mask_style_contract.py for each style
of the registry, and for the style a test adds the way docs/architecture.md says)."""
import cv2
import numpy as np

from insightface_g2d.masks.styles import MASK_POSITIONS, MASK_STYLES, SHADE_MAX, render_group
from insightface_g2d.masks.synthesizer import MaskSynthesizer

# Aligned 112-pixel frame: eye centres at row 51.6, nose tip (56, 71.7), mouth centre (56, ~92).
# First row a mask may reach, jitter included (docs/data.md, "Styles and wear positions").
FIRST_ROW = {"normal": 58, "high": 55, "low": 73}
NOSE_TIP, MOUTH = (72, 56), (92, 56)


def smooth_faces(n, seed=0, size=112):
    """Smooth random colour images uint8 [n, size, size, 3]: texture everywhere, no flat areas."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, size // 8, size // 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])


def check_layers(name, k=20, size=112, pad=2):
    """render_group of the style: shapes, dtypes, ranges, the layers its kind needs, determinism."""
    style = MASK_STYLES[name]
    for position in MASK_POSITIONS:
        a = render_group(style, position, k, size, pad, np.random.default_rng([3, 1]))
        b = render_group(style, position, k, size, pad, np.random.default_rng([3, 1]))
        c = render_group(style, position, k, size, pad, np.random.default_rng([3, 2]))
        alpha, shade = a["alpha"], a["shade"]
        assert alpha.dtype == np.float32 and alpha.ndim == 3 and alpha.shape[0] == k, (name, position)
        assert shade.dtype == np.float32 and shade.shape == alpha.shape, (name, position)
        assert alpha.min() == 0.0 and alpha.max() == 1.0, (name, position)
        assert shade.min() >= 0.0 and shade.max() <= SHADE_MAX, (name, position)
        assert (a["level"] is not None) == (style.kind == "pattern"), (name, position)
        assert (a["tex"] is not None) == (style.kind == "texture"), (name, position)
        if a["level"] is not None:
            assert a["level"].shape == alpha.shape and 0.0 <= a["level"].min() <= a["level"].max() <= 1.0
        if a["tex"] is not None:
            assert a["tex"].shape == alpha.shape + (3,) and 0.0 <= a["tex"].min() <= a["tex"].max() <= 1.0
        for key in ("alpha", "shade", "level", "tex"):  # same generator state: same bytes
            assert (a[key] is None and b[key] is None) or np.array_equal(a[key], b[key]), (name, position, key)
        assert not np.array_equal(alpha, c["alpha"]), (name, position)  # another seed: other masks
        # the grid reaches past the crop on both sides and below it (chin, ear loops)
        assert a["col0"] < -pad and a["row0"] + alpha.shape[1] > size + pad, (name, position)


def check_on_faces(name, n=96):
    """Masks drawn by a synthesizer of this style alone, per wear position: where they go, what they
    leave untouched, and that a seed fixes every byte."""
    synth = MaskSynthesizer(styles=[name])
    imgs = smooth_faces(n, seed=5)
    for position in MASK_POSITIONS:
        out, alpha = synth.apply_batch(imgs, np.random.default_rng(11), positions=position)
        again, alpha2 = synth.apply_batch(imgs, np.random.default_rng(11), positions=position)
        other, _ = synth.apply_batch(imgs, np.random.default_rng(12), positions=position)
        assert out.shape == imgs.shape and out.dtype == np.uint8, (name, position)
        assert alpha.shape == imgs.shape[:3] and alpha.dtype == np.float32, (name, position)
        assert np.array_equal(out, again) and np.array_equal(alpha, alpha2), (name, position)
        assert not np.array_equal(out, other), (name, position)
        # the eyes and everything above the position's top edge are never touched
        assert alpha[:, :FIRST_ROW[position]].max() == 0.0, (name, position)
        assert np.array_equal(out[:, :FIRST_ROW[position]], imgs[:, :FIRST_ROW[position]]), (name, position)
        zero = alpha == 0.0
        assert np.array_equal(out[zero], imgs[zero]), (name, position)
        # the lower face is covered: the mouth always, the nose tip exactly when worn normal or high
        assert np.mean(alpha[:, MOUTH[0], MOUTH[1]] > 0.99) > 0.95, (name, position)
        tip = alpha[:, NOSE_TIP[0], NOSE_TIP[1]]
        if position == "low":
            assert tip.max() == 0.0, (name, position)
        else:
            assert np.mean(tip > 0.99) > 0.9, (name, position)
        # a real mask: 8-45 % of the crop fully covered, and where it is, the face is gone
        full = (alpha == 1.0).mean(axis=(1, 2))
        assert full.min() > 0.08 and full.max() < 0.45, (name, position, full.min(), full.max())
        covered = alpha == 1.0
        assert np.mean(np.any(out[covered] != imgs[covered], axis=-1)) > 0.9, (name, position)

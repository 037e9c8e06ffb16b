"""The worn style (masks as photos show them) and styles made for experiments: what "no styles
named" draws, and that the worn masks are dark and barely saturated as real ones are."""
import cv2
import numpy as np

from insightface_g2d.masks.styles import MASK_STYLES, default_styles
from insightface_g2d.masks.styles import worn
from insightface_g2d.masks.synthesizer import MaskSynthesizer

from mask_style_contract import smooth_faces

ORIGINAL = ("surgical", "n95", "kn95", "cloth", "patterned", "textured")


def test_experiment_styles_are_drawn_only_where_named():
    assert default_styles() == ORIGINAL  # adding a style made for experiments changes nobody's masks
    assert not MASK_STYLES["worn"].default and not MASK_STYLES["occlusion"].default
    assert MaskSynthesizer().styles == ORIGINAL
    assert MaskSynthesizer(styles=["worn", "cloth"]).styles == ("worn", "cloth")
    assert list(MASK_STYLES).index("worn") == len(MASK_STYLES) - 1  # appended after occlusion


def _masked_pixels(style, n=48, seed=3):
    faces = smooth_faces(n, seed=seed)
    synth = MaskSynthesizer(styles=[style], positions=["normal"], match_brightness=False)
    masked, alpha = synth.apply_batch(faces, np.random.default_rng(seed))[:2]
    inside = alpha > 0.9
    hsv = cv2.cvtColor(masked.reshape(-1, 112, 3), cv2.COLOR_RGB2HSV).reshape(masked.shape)
    lum = masked.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return lum[inside], hsv[..., 1][inside].astype(np.float64), inside


def test_worn_masks_are_dark_and_barely_saturated():
    lum, sat, inside = _masked_pixels("worn")
    cloth_lum, cloth_sat, _ = _masked_pixels("cloth")
    assert inside.mean() > 0.2  # a wide mask: more than a fifth of the crop
    assert np.median(lum) < 80 and np.median(sat) < 40  # RMFD's real masks: 72 and 14
    assert np.median(lum) < np.median(cloth_lum) and np.median(sat) < np.median(cloth_sat)


def test_worn_layers_are_seeded():
    from insightface_g2d.masks.styles import render_group

    a, b, c = (render_group(worn.STYLE, "high", 16, 112, 2, np.random.default_rng(s)) for s in (1, 1, 2))
    assert np.array_equal(a["alpha"], b["alpha"]) and np.array_equal(a["shade"], b["shade"])
    assert not np.array_equal(a["alpha"], c["alpha"])

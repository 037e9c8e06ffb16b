"""The occlusion style: random covers of the lower face (beyond the contract every style meets,
tests/mask_style_contract.py): seeded, where it covers, what it fills with."""
import numpy as np
import pytest

from insightface_g2d.masks.styles import MASK_POSITIONS, MASK_STYLES, render_group
from insightface_g2d.masks.styles import occlusion
from insightface_g2d.masks.synthesizer import MaskSynthesizer

from mask_style_contract import smooth_faces

NOSE_TIP_ROW = 71.7  # aligned 112 frame


def test_registered_once_as_a_texture_style():
    assert MASK_STYLES["occlusion"] is occlusion.STYLE and occlusion.STYLE.kind == "texture"
    assert list(MASK_STYLES).index("occlusion") == 6  # appended: the styles before keep their banks
    assert not occlusion.STYLE.default  # drawn only where named


@pytest.mark.parametrize("position", MASK_POSITIONS)
def test_layers_seeded_shape_and_dtype(position):
    a = render_group(occlusion.STYLE, position, 24, 112, 2, np.random.default_rng([5, 0]))
    b = render_group(occlusion.STYLE, position, 24, 112, 2, np.random.default_rng([5, 0]))
    c = render_group(occlusion.STYLE, position, 24, 112, 2, np.random.default_rng([5, 1]))
    h, w = a["alpha"].shape[1:]
    assert a["alpha"].dtype == a["shade"].dtype == a["tex"].dtype == np.float32
    assert a["alpha"].shape == a["shade"].shape == (24, h, w) and a["tex"].shape == (24, h, w, 3)
    assert a["level"] is None
    for key in ("alpha", "shade", "tex"):
        assert np.array_equal(a[key], b[key]) and not np.array_equal(a[key], c[key]), key


@pytest.mark.parametrize("position", MASK_POSITIONS)
def test_cover_lies_below_its_top_edge_and_reaches_chin_and_cheeks(position):
    k = 64
    layers = render_group(occlusion.STYLE, position, k, 112, 0, np.random.default_rng(7))
    alpha, row0, col0 = layers["alpha"], layers["row0"], layers["col0"]
    rows = np.arange(alpha.shape[1]) + row0 + 0.5   # pixel centres, 112 units (size 112)
    cols = np.arange(alpha.shape[2]) + col0 + 0.5
    top = occlusion.TOP[position][0]
    # nothing above the position's highest top edge (feathering included); the eyes (51.6) stay free
    assert alpha[:, rows < top - 1.5].max() == 0.0
    if position == "low":
        assert alpha[:, rows < NOSE_TIP_ROW + 2].max() == 0.0   # the nose stays free
    # every cover reaches the mouth and the chin line, and out toward the cheeks
    mouth_row = np.argmin(np.abs(rows - 92.0))
    centre = np.argmin(np.abs(cols - 56.0))
    assert (alpha[:, mouth_row, centre] > 0.99).all()
    width = (alpha[:, mouth_row] > 0.5).sum(axis=1)
    assert width.min() >= 30 and np.median(width) >= 60    # face edges at the mouth: ~x 18..94 (polygons cut in)
    assert (alpha[:, np.argmin(np.abs(rows - 106.0)), centre] > 0.5).mean() > 0.9


def test_fills_and_shapes_all_occur_and_vary():
    rng = np.random.default_rng(3)
    layers = render_group(occlusion.STYLE, "normal", 64, 112, 2, rng)
    tex, alpha = layers["tex"], layers["alpha"]
    inside = alpha > 0.99
    spread = np.array([tex[i][inside[i]].std(axis=0).mean() for i in range(len(tex))])
    assert (spread < 1e-3).mean() > 0.1        # solid and skin fills
    assert (spread > 0.05).mean() > 0.2        # gradients, noise, stripes
    means = np.array([tex[i][inside[i]].mean(axis=0) for i in range(len(tex))])
    assert means.std(axis=0).min() > 0.1       # colours vary across templates
    # outlines differ: the covered area of the crop varies
    area = (alpha > 0.5).sum(axis=(1, 2))
    assert area.std() / area.mean() > 0.05


def test_synthesizer_draws_it_deterministically_and_leaves_the_upper_face():
    synth = MaskSynthesizer(styles=["surgical", "occlusion"])
    imgs = smooth_faces(32, seed=2)
    out, alpha = synth.apply_batch(imgs, np.random.default_rng(9), styles="occlusion")
    again, _ = synth.apply_batch(imgs, np.random.default_rng(9), styles="occlusion")
    assert out.dtype == np.uint8 and out.shape == imgs.shape and alpha.shape == imgs.shape[:3]
    assert np.array_equal(out, again)
    assert np.array_equal(out[:, :55], imgs[:, :55]) and alpha[:, :55].max() == 0.0
    assert (alpha[:, 92, 56] > 0.99).all()

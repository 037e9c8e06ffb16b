"""Mask synthesis: shapes, determinism, where masks go, blending, batch and landmark variants."""
import importlib.util
import pickle

import cv2
import numpy as np
import pytest

from insightface_g2d.masks import synthesizer as masks_mod
from insightface_g2d.data.align import ARCFACE_TEMPLATE, align_face, alignment_matrix, transform_points
from insightface_g2d.masks.styles import MASK_POSITIONS, MASK_STYLES
from insightface_g2d.masks.styles.textured import insightface_mask_textures
from insightface_g2d.masks.synthesizer import PARAMS_PER_FACE, MaskSynthesizer
from insightface_g2d.errors import ConfigError, DataError

def faces(n, seed=0, size=112):
    """Smooth random colour images (uint8 [n, size, size, 3]): texture everywhere, no flat areas."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, size // 8, size // 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])


@pytest.fixture(scope="module")
def synth():
    return MaskSynthesizer(styles=tuple(MASK_STYLES)).warmup()  # every style, also those drawn only by name


def test_names():
    assert set(MASK_STYLES) >= {"surgical", "n95", "kn95", "cloth", "patterned", "textured"}
    assert MASK_POSITIONS == ("normal", "high", "low")


@pytest.mark.parametrize("style", tuple(MASK_STYLES))
def test_apply_shapes_and_ranges(synth, style):
    img = faces(1)[0]
    masked, alpha = synth.apply(img, np.random.default_rng(1), style=style)
    assert masked.shape == (112, 112, 3) and masked.dtype == np.uint8
    assert alpha.shape == (112, 112) and alpha.dtype == np.float32
    assert alpha.min() == 0.0 and alpha.max() == 1.0
    # a real mask: at least a tenth of the crop fully covered (normal: ~25 %), a soft rim
    assert (alpha == 1.0).mean() > 0.1
    assert ((alpha > 0.05) & (alpha < 0.95)).sum() > 100


def test_determinism(synth):
    imgs = faces(16)
    a = synth.apply_batch(imgs, np.random.default_rng(7))
    b = synth.apply_batch(imgs, np.random.default_rng(7))
    c = synth.apply_batch(imgs, np.random.default_rng(8))
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert a[0].tobytes() != c[0].tobytes()
    # a second synthesizer with the same settings shares the bank: same bytes
    d = MaskSynthesizer(styles=tuple(MASK_STYLES)).apply_batch(imgs, np.random.default_rng(7))
    assert a[0].tobytes() == d[0].tobytes()


def test_bank_rebuild_is_deterministic():
    kw = dict(styles=["surgical", "patterned"], templates_per_group=8, bank_seed=123)
    imgs = faces(6)
    first = MaskSynthesizer(**kw).apply_batch(imgs, np.random.default_rng(0))
    for key in [k for k in masks_mod._GROUPS if k[5] == 123]:
        del masks_mod._GROUPS[key]
    again = MaskSynthesizer(**kw).apply_batch(imgs, np.random.default_rng(0))
    assert first[0].tobytes() == again[0].tobytes()
    other = MaskSynthesizer(**dict(kw, bank_seed=124)).apply_batch(imgs, np.random.default_rng(0))
    assert first[1].tobytes() != other[1].tobytes()


def test_batch_equals_sequential_apply(synth):
    imgs = faces(10, seed=3)
    styles = [None, "n95", None, "textured", "cloth", None, "kn95", "patterned", None, "surgical"]
    out, alpha = synth.apply_batch(imgs, np.random.default_rng(11), styles=styles)
    rng = np.random.default_rng(11)
    for i in range(len(imgs)):
        m, a = synth.apply(imgs[i], rng, style=styles[i])
        assert np.array_equal(m, out[i]) and np.array_equal(a, alpha[i])
    # one block of uniforms per face: the stream is left where N single calls leave it
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    synth.apply_batch(imgs, rng_a)
    rng_b.random((len(imgs), PARAMS_PER_FACE))
    assert rng_a.random() == rng_b.random()


def _alphas(synth, position, n=1500, seed=0):
    imgs = np.full((n, 112, 112, 3), 128, np.uint8)
    return synth.apply_batch(imgs, np.random.default_rng(seed), positions=position)[1]


def test_alpha_location_per_position(synth):
    """Template eyes are at row 51.6 (lower lids ~56), nose tip at (56, 71.7), mouth at row ~92."""
    rows = np.arange(112)
    for position, first_row, nose_covered in (("normal", 58, True), ("high", 55, True), ("low", 73, False)):
        alpha = _alphas(synth, position)
        # nothing above the position's top edge: the eye band (rows <= 54) is never covered;
        # only a mask worn high reaches the lower eyelids' row (55)
        assert alpha[:, :first_row].max() == 0.0, position
        assert alpha[:, first_row:first_row + 3].max() > 0.0, position  # the bound is tight
        mass = alpha.sum(axis=(0, 2))
        assert mass[rows >= 60].sum() / mass.sum() > (0.97 if position == "high" else 0.999), position
        # the mouth (template corners at y ~92) is always covered ...
        assert np.mean(alpha[:, 92, 56] > 0.99) > 0.99, position
        # ... and the nose tip (56, 71.7) exactly when worn normal or high
        tip = alpha[:, 72, 56]
        if nose_covered:
            assert np.mean(tip > 0.99) > 0.98, position
        else:
            assert tip.max() == 0.0, position


def test_bank_templates_respect_bounds(synth):
    """Exhaustive over the bank: every template, any jitter, stays below its position's bound."""
    bound = {"normal": 58, "high": 55, "low": 73}
    for si, style in enumerate(synth.styles):
        for pi, position in enumerate(synth.positions):
            g = synth.groups[si][pi]
            rows_with_alpha = np.flatnonzero(g.alpha.max(axis=(0, 2)) > 0) + g.row0
            assert rows_with_alpha.min() - synth.pad >= bound[position], (style, position)


def test_templates_hold_the_whole_mask(synth):
    """Templates reach past the crop (chin, ear loops) and end inside their arrays."""
    for row in synth.groups:
        for g in row:
            assert g.alpha[:, -1].max() == 0 and g.alpha[:, :, 0].max() == 0 and g.alpha[:, :, -1].max() == 0
            if g.position != "high":  # worn high, the mask ends about at the crop's bottom edge
                below = g.alpha[:, 114 - g.row0:]  # aligned rows >= 114
                assert below.max() == 255, (g.style, g.position)


def test_apply_landmarks_draws_the_mask_below_the_crop(synth):
    """On a photo, the mask continues under the chin, past the aligned crop's bottom edge."""
    m = np.array([[1.2, 0.0, 60.0], [0.0, 1.2, 20.0]])
    big = np.full((260, 260, 3), 100, np.uint8)
    lmk = transform_points(ARCFACE_TEMPLATE, m)
    rows_below = []
    for seed in range(12):  # a style whose chin is rounded (kn95's pointed tip may end at ~108)
        _, alpha = synth.apply_landmarks(big, lmk, np.random.default_rng(seed), style="surgical", position="normal")
        col = alpha[:, int(round(60 + 1.2 * 56))]
        rows_below.append((np.flatnonzero(col > 0.5).max() - 20) / 1.2)  # last masked row, aligned units
    assert min(rows_below) > 112 and max(rows_below) < 140


def test_masked_equals_original_where_alpha_zero(synth):
    imgs = faces(40, seed=5)
    out, alpha = synth.apply_batch(imgs, np.random.default_rng(2))
    zero = alpha == 0
    assert np.array_equal(out[zero], imgs[zero])
    full = alpha > 0.99
    assert full.sum() > 40 * 2000
    assert np.mean(np.any(out[full] != imgs[full], axis=-1)) > 0.97


def test_covered_pixels_do_not_depend_on_the_face_below(synth):
    """Where alpha == 1 the output is the mask alone; partial alpha is a convex blend."""
    a = faces(8, seed=1)
    b = a.copy()
    b[:, 60:] = faces(8, seed=2)[:, 60:]  # same upper face (same brightness match), other lower face
    out_a, al_a = synth.apply_batch(a, np.random.default_rng(4))
    out_b, al_b = synth.apply_batch(b, np.random.default_rng(4))
    assert np.array_equal(al_a, al_b)
    full = al_a == 1.0
    assert np.array_equal(out_a[full], out_b[full])
    # blend of two images with the same mask colour: out_a - out_b = (1 - alpha)(a - b), +-1 rounding
    diff = out_a.astype(np.int32) - out_b.astype(np.int32)
    expect = (1.0 - al_a[..., None]) * (a.astype(np.int32) - b.astype(np.int32))
    assert np.abs(diff - expect).max() <= 2.0


def test_apply_landmarks_matches_align_then_apply(synth):
    """A face warped into a larger image and masked there, aligned back, equals masking the
    aligned face (up to the two resamplings)."""
    aligned = faces(1, seed=9)[0]
    m = np.array([[1.5, -0.4, 40.0], [0.4, 1.5, 10.0]])  # ~15 deg, scale ~1.55
    big = cv2.warpAffine(aligned, m, (260, 240), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lmk = transform_points(ARCFACE_TEMPLATE, m)
    # the styles these seeds drew from the first six of the registry (fine two-colour patterns
    # resample with larger errors than the 6-level bound below)
    for seed, style in enumerate(("cloth", "cloth", "n95", "surgical")):
        masked_big, alpha_big = synth.apply_landmarks(big, lmk, np.random.default_rng(seed), style=style)
        assert masked_big.shape == big.shape and alpha_big.shape == big.shape[:2]
        ref_masked, ref_alpha = synth.apply(align_face(big, lmk), np.random.default_rng(seed), style=style)
        back = align_face(masked_big, lmk)
        back_alpha = cv2.warpAffine(alpha_big, alignment_matrix(lmk), (112, 112), flags=cv2.INTER_LINEAR)
        assert np.abs(back_alpha - ref_alpha).mean() < 0.02
        inside = ref_alpha > 0.99
        err = np.abs(back.astype(np.float32) - ref_masked.astype(np.float32))
        assert err[inside].mean() < 6.0
        # outside the mask the big image is untouched
        assert np.array_equal(masked_big[alpha_big == 0], big[alpha_big == 0])


def test_positions_and_styles_subsets():
    low = MaskSynthesizer(styles=["kn95"], positions=("low",))
    alpha = low.apply_batch(np.full((50, 112, 112, 3), 90, np.uint8), np.random.default_rng(0))[1]
    assert alpha[:, :73].max() == 0.0 and alpha[:, 95:].mean() > 0.5
    with pytest.raises(ConfigError):
        MaskSynthesizer(styles=["balaclava"])
    with pytest.raises(ConfigError):
        MaskSynthesizer(positions=("chin",))
    with pytest.raises(ConfigError):
        low.apply(faces(1)[0], np.random.default_rng(0), style="surgical")  # not in this synthesizer


def test_bad_images_raise_data_error(synth):
    rng = np.random.default_rng(0)
    with pytest.raises(DataError):
        synth.apply(np.zeros((100, 112, 3), np.uint8), rng)
    with pytest.raises(DataError):
        synth.apply(np.zeros((112, 112, 3), np.float32), rng)
    with pytest.raises(DataError):
        synth.apply_batch(np.zeros((2, 112, 112), np.uint8), rng)
    with pytest.raises(DataError):
        synth.apply_landmarks(np.zeros((200, 200, 3), np.uint8), np.zeros((4, 2)), rng)


def test_other_size_scales_geometry():
    s224 = MaskSynthesizer(size=224, styles=["surgical", "n95"], positions=("normal",), templates_per_group=8)
    out, alpha = s224.apply_batch(faces(20, size=224), np.random.default_rng(0))
    assert out.shape == (20, 224, 224, 3) and alpha.shape == (20, 224, 224)
    assert alpha[:, :2 * 58].max() == 0.0
    assert np.mean(alpha[:, 2 * 92, 2 * 56] > 0.99) == 1.0


def test_pickle_drops_the_bank(synth):
    blob = pickle.dumps(synth)
    assert len(blob) < 50_000
    clone = pickle.loads(blob)
    img = faces(1)[0]
    assert np.array_equal(clone.apply(img, np.random.default_rng(3))[0], synth.apply(img, np.random.default_rng(3))[0])


def test_textures_from_insightface_when_installed():
    if importlib.util.find_spec("insightface") is None:
        pytest.skip("insightface not installed: the textured style uses procedural textures")
    tex = insightface_mask_textures()
    assert len(tex) == 4 and all(t.shape == (64, 128, 3) and 0 <= t.min() and t.max() <= 1 for t in tex)
    # white, blue, black, green photos in RGB order: the blue one is bluer than it is red
    assert tex[1][..., 2].mean() > tex[1][..., 0].mean() + 0.2 and tex[2].mean() < 0.4


def test_textured_falls_back_to_procedural_textures(monkeypatch):
    from insightface_g2d.masks.styles import textured

    monkeypatch.setattr(textured, "insightface_mask_textures", lambda: ())
    synth = MaskSynthesizer(styles=["textured"], templates_per_group=8, bank_seed=4242)
    out, alpha = synth.apply_batch(faces(4), np.random.default_rng(0))
    assert (alpha == 1.0).mean() > 0.1
    for key in [k for k in masks_mod._GROUPS if k[-1] == 4242]:
        del masks_mod._GROUPS[key]  # do not leave fallback templates in the process cache

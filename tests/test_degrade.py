"""The real-photo degradation of the student's input face (masks/degrade.py) and its place in the
masked-pair loader: seeded, clean face untouched, batch path equal to the item path, config checked."""
import numpy as np
import pytest
import torch

from insightface_g2d.masks.degrade import Degradation
from insightface_g2d.masks.masked_pairs import MaskedPairDataset
from insightface_g2d.data.synthetic import SyntheticFaces
from insightface_g2d.errors import ConfigError
from insightface_g2d.training.checks import check_masks


def _face():
    from insightface_g2d.data.synthetic import render_face

    return render_face(0, 3, 1)[0]


def test_seeded_and_same_number_of_draws():
    face = _face()
    d = Degradation()
    a, _ = d.apply(face, np.random.default_rng(5))
    b, _ = d.apply(face, np.random.default_rng(5))
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == face.shape
    for prob in (0.0, 1.0):  # applied or not, the generator advances by the same amount
        rng = np.random.default_rng(1)
        Degradation(prob=prob).apply(face, rng)
        assert rng.random() == np.random.default_rng(1).random(21)[20]


def test_each_effect_changes_the_face_as_it_should():
    face = _face()
    rng = np.random.default_rng(0)
    off = dict(p_place=0, p_downscale=0, p_blur=0, p_jpeg=0, p_color=0)
    same, _ = Degradation(prob=1, **off).apply(face, rng)
    assert np.array_equal(same, face)
    # a pure shift of 4 px moves the face by 4 px (columns away from the border match exactly)
    dx = 4
    shifted, alpha = Degradation(prob=1, **dict(off, p_place=1), turn=0, scale=0, shift=dx / 112).apply(
        face, _fixed_rng(place_shift=(1.0, 0.5)), np.ones(face.shape[:2], np.float32))
    assert np.array_equal(shifted[:, 10 + dx:100 + dx], face[:, 10:100])
    assert alpha[:, :dx].max() == 0 and alpha[:, dx:].min() == 1
    blurred, _ = Degradation(prob=1, **dict(off, p_blur=1), blur=2.0).apply(face, _fixed_rng())
    lap = lambda x: np.abs(np.diff(x.astype(np.float32), axis=1)).mean()  # noqa: E731
    assert lap(blurred) < 0.8 * lap(face)
    small, _ = Degradation(prob=1, **dict(off, p_downscale=1), downscale=0.25).apply(face, _fixed_rng())
    assert lap(small) < lap(face)


def _fixed_rng(place_shift=(0.5, 0.5)):
    """A generator stand-in whose 20 draws are 0 (every effect on) except the placement's shift."""
    class Fixed:
        def random(self, n):
            u = np.zeros(n)
            u[2:4] = 0.5
            u[4:6] = place_shift
            u[7] = 0.0
            u[9] = 1.0  # the largest blur
            return u
    return Fixed()


def test_loader_degrades_student_face_only_and_batches_equal_items():
    base = SyntheticFaces(num_identities=4, images_per_identity=3, seed=1)
    plain = MaskedPairDataset(base, mask_prob=0.75, seed=2)
    worn = MaskedPairDataset(base, mask_prob=0.75, seed=2, degrade=Degradation(prob=1.0))
    idx = list(range(len(base)))
    batch = worn.__getitems__(idx)
    changed = 0
    for i in idx:
        item, ref = worn[i], plain[i]
        assert torch.equal(item["clean"], ref["clean"])
        assert torch.equal(item["label"], ref["label"]) and torch.equal(item["flipped"], ref["flipped"])
        for key in ("masked", "clean", "alpha"):
            assert torch.equal(batch[i][key], item[key])
        changed += not torch.equal(item["masked"], ref["masked"])
    assert changed >= len(idx) - 2
    assert MaskedPairDataset(base, evaluation=True, degrade=Degradation()).degrade is None


def test_config_values_checked():
    assert Degradation.from_config(None) is None and Degradation.from_config(True) == Degradation()
    assert Degradation.from_config({"blur": 2.0}).blur == 2.0
    check_masks({"degrade": {"jpeg": 50}})
    for bad, match in (({"blurr": 1}, "did you mean 'blur'"), ({"prob": 2}, "at most 1"),
                       ({"jpeg": 0}, "1..100"), ({"shift": float("nan")}, ">= 0"), ("yes", "must be True")):
        with pytest.raises(ConfigError, match=match):
            check_masks({"degrade": bad})


def test_frame_blacks_out_what_a_tight_photo_lacks():
    face = _face()
    off = dict(p_place=0, p_downscale=0, p_blur=0, p_jpeg=0, p_color=0)
    framed, alpha = Degradation(prob=1, **off, p_frame=1.0, frame=0.6).apply(
        face, np.random.default_rng(2), np.ones(face.shape[:2], np.float32))
    black = (framed == 0).all(axis=2)
    assert black[0, 0] and black[-1, -1] and not black[56, 56]
    assert 0.05 < black.mean() < 0.7 and np.array_equal(alpha == 0, black | (alpha == 0))
    inside = ~black
    assert np.array_equal(framed[inside], face[inside])  # what is kept is not changed

"""SyntheticFaces: protocol, determinism, identity splits, landmarks, separability of identities."""
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from insightface_g2d.data.align import ARCFACE_TEMPLATE
from insightface_g2d.data.synthetic import SyntheticFaces, render_face
from insightface_g2d.errors import DataError


# Fisherfaces probe shared with benchmarks/bench_synthetic.py (test and benchmark code, not shipped)
_spec = importlib.util.spec_from_file_location(
    "linear_probe", Path(__file__).resolve().parents[1] / "benchmarks" / "linear_probe.py")
linear_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(linear_probe)
region_identification = linear_probe.region_identification


def digest(img):
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()


def test_protocol_shapes_and_labels():
    ds = SyntheticFaces(num_identities=5, images_per_identity=3, seed=0)
    assert len(ds) == 15 and ds.num_classes == 5
    labels = []
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.dtype == np.uint8 and img.shape == (112, 112, 3)
        assert isinstance(label, int)
        labels.append(label)
    assert labels == [i // 3 for i in range(15)]
    assert ds.labels.tolist() == labels
    # Faces are not blank: plenty of contrast and colour.
    img = ds[0][0]
    assert img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 500


def test_deterministic_pure_function_of_seed_and_index():
    a = SyntheticFaces(6, 4, seed=3)
    b = SyntheticFaces(6, 4, seed=3)
    order = [17, 2, 9, 2, 23, 0]
    first = {i: digest(a[i][0]) for i in order}
    # Another instance, reverse order, after rendering other items: same bytes.
    for i in reversed(order):
        b[(i + 5) % len(b)]
        assert digest(b[i][0]) == first[i]
    assert digest(a[-1][0]) == digest(a[len(a) - 1][0])
    other_seed = SyntheticFaces(6, 4, seed=4)
    assert digest(other_seed[2][0]) != first[2]
    # Photos of one identity differ from each other.
    assert len({digest(a[i][0]) for i in range(4)}) == 4


def test_identity_offset_gives_disjoint_and_consistent_populations():
    whole = SyntheticFaces(6, 3, seed=5)
    tail = SyntheticFaces(4, 3, seed=5, identity_offset=2)
    for k in range(len(tail)):
        assert digest(tail[k][0]) == digest(whole[6 + k][0])  # identity 2+ of the same population
        assert tail[k][1] == k // 3  # labels restart at 0
    train, test = SyntheticFaces(5, 2, seed=5), SyntheticFaces(3, 4, seed=5, identity_offset=5)
    assert len(test) == 12 and test.num_classes == 3
    assert not {digest(train[i][0]) for i in range(len(train))} & {digest(test[i][0]) for i in range(len(test))}


def test_landmarks_follow_template_and_size():
    ds = SyntheticFaces(4, 5, seed=1)
    tpl = np.asarray(ARCFACE_TEMPLATE, np.float32)
    for i in range(len(ds)):
        img, lmk = ds.render(i)
        assert lmk.shape == (5, 2) and lmk.dtype == np.float32
        assert np.abs(lmk - tpl).max() < 14.0  # identity proportions + pose jitter only
        assert digest(img) == digest(ds[i][0])
    # The eyes are left of/right of the nose and above the mouth, as in the template.
    lmk = ds.landmarks(0)
    assert lmk[0, 0] < lmk[2, 0] < lmk[1, 0] and lmk[2, 1] < lmk[3, 1]
    small = SyntheticFaces(4, 5, seed=1, size=64)
    img64, lmk64 = small.render(3)
    assert img64.shape == (64, 64, 3)
    np.testing.assert_allclose(lmk64, ds.landmarks(3) * 64 / 112, rtol=1e-5)
    # Pixels around the eye landmark are darker/more varied than the cheek below it (an eye is there).
    img, lmk = render_face(0, 7, 0)
    x, y = np.round(lmk[0]).astype(int)
    eye = img[y - 2:y + 3, x - 4:x + 5].astype(float)
    assert eye.std() > 25


def test_fingerprint_and_cache():
    a = SyntheticFaces(10, 2, seed=1)
    fp = a.fingerprint()
    assert fp == SyntheticFaces(10, 2, seed=1).fingerprint() and len(fp) == 16
    int(fp, 16)
    others = [SyntheticFaces(11, 2, seed=1), SyntheticFaces(10, 3, seed=1), SyntheticFaces(10, 2, seed=2),
              SyntheticFaces(10, 2, seed=1, identity_offset=1), SyntheticFaces(10, 2, seed=1, size=96)]
    assert len({fp} | {o.fingerprint() for o in others}) == 6
    cached = SyntheticFaces(10, 2, seed=1, cache=True)
    x = cached[3][0]
    x[:] = 0  # callers may modify what they get: the cache keeps its own copy
    assert digest(cached[3][0]) == digest(a[3][0])


def test_bad_arguments():
    with pytest.raises(DataError, match="num_identities"):
        SyntheticFaces(0)
    with pytest.raises(DataError, match="seed"):
        SyntheticFaces(seed=-1)
    with pytest.raises(DataError, match="images_per_identity"):
        SyntheticFaces(images_per_identity=2.5)
    with pytest.raises(IndexError):
        SyntheticFaces(2, 2)[4]


def test_identities_separable_from_upper_face_and_harder_with_lower_face_hidden():
    """Fisherfaces learned on 100 training identities, identification of 40 held-out identities.

    Measured (seed 0): whole face 0.967, upper face (rows 0-59) 0.800, lower face hidden 0.883,
    masked probes vs clean gallery 0.433; chance 0.025.
    """
    from insightface_g2d.masks.synthesizer import MaskSynthesizer

    train, test = SyntheticFaces(100, 6, seed=0), SyntheticFaces(40, 6, seed=0, identity_offset=100)
    xtr = np.stack([train[i][0] for i in range(len(train))])
    xte = np.stack([test[i][0] for i in range(len(test))])
    ytr, yte = train.labels, test.labels

    def hide_lower(x):
        x = x.copy()
        x[:, 62:] = 128
        return x

    full = region_identification(xtr, ytr, xte, yte)
    upper = region_identification(xtr, ytr, xte, yte, view=lambda x: x[:, :60])
    hidden = region_identification(xtr, ytr, xte, yte, view=hide_lower)
    masked = MaskSynthesizer().apply_batch(xte, np.random.default_rng(0))[0]
    gallery = (np.arange(len(yte)) % 6) < 3
    masked_probes = region_identification(xtr, ytr, np.where(gallery[:, None, None, None], xte, masked), yte)
    print(f"full {full:.3f} upper {upper:.3f} lower-hidden {hidden:.3f} masked-probes {masked_probes:.3f}")
    chance = 1 / 40
    assert upper > 0.6 > 20 * chance          # the upper face alone identifies most people
    assert full > 0.9
    assert hidden < full - 0.04                # hiding the lower face costs accuracy ...
    assert 1 - hidden > 2 * (1 - full)         # ... at least doubling the error
    assert masked_probes < full - 0.3          # a clean-trained model breaks on masked probes

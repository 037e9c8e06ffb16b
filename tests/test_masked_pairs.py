"""MaskedPairDataset: pair semantics, flips, reproducibility across epochs, workers and modes."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from insightface_g2d.masks.masked_pairs import MaskedPairDataset
from insightface_g2d.data.synthetic import SyntheticFaces
from insightface_g2d.data.transforms import to_image, to_tensor
from insightface_g2d.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def base():
    return SyntheticFaces(num_identities=4, images_per_identity=3, seed=11)


class BoxSynth:
    """Stand-in synthesizer: a grey box over rows 70-111 with rng-drawn brightness; records styles."""

    def __init__(self):
        self.styles_seen = []

    def apply(self, img, rng, style=None):
        self.styles_seen.append(style)
        alpha = np.zeros(img.shape[:2], np.float32)
        alpha[70:, 20:90] = 1.0
        alpha[68:70, 20:90] = 0.5
        out = img.astype(np.float32) * (1 - alpha[..., None]) + alpha[..., None] * rng.uniform(50, 200)
        return np.round(out).astype(np.uint8), alpha


def test_item_layout(base):
    ds = MaskedPairDataset(base, seed=1)
    assert len(ds) == len(base) and ds.num_classes == 4 and ds.fingerprint() == base.fingerprint()
    item = ds[5]
    assert set(item) == {"masked", "clean", "alpha", "label", "index", "flipped"}
    assert item["flipped"].dtype == torch.bool and item["flipped"].shape == ()
    for k in ("masked", "clean"):
        assert item[k].dtype == torch.float32 and item[k].shape == (3, 112, 112)
        assert item[k].min() >= -1 and item[k].max() <= 1
    assert item["alpha"].dtype == torch.float32 and item["alpha"].shape == (1, 112, 112)
    assert 0 <= item["alpha"].min() and item["alpha"].max() <= 1
    assert item["label"].dtype == torch.int64 and item["label"].shape == () and int(item["label"]) == 1
    assert item["index"].dtype == torch.int64 and int(item["index"]) == 5
    assert int(ds[-1]["index"]) == len(ds) - 1


@pytest.mark.parametrize("real", [True, False])
def test_masked_equals_clean_outside_mask(base, real):
    synth = None if real else BoxSynth()
    ds = MaskedPairDataset(base, mask_prob=1.0, seed=2, synthesizer=synth)
    for i in range(len(ds)):
        masked, clean, alpha, label = ds.sample(i)
        assert label == i // 3
        outside = alpha == 0
        assert outside.any() and (~outside).sum() > 500  # a mask covering a real area
        np.testing.assert_array_equal(masked[outside], clean[outside])
        assert (masked[alpha > 0.9] != clean[alpha > 0.9]).any()
        # Masks sit on the lower face (nose, mouth, chin), not on the eyes.
        rows = np.flatnonzero(alpha.max(1) > 0.5)
        assert rows.min() > 52 and rows.max() > 95
    item = ds[4]  # the tensors are exactly the numpy sample
    masked, clean, alpha, _ = ds.sample(4)
    np.testing.assert_array_equal(to_image(item["masked"]), masked)
    np.testing.assert_array_equal(to_image(item["clean"]), clean)
    np.testing.assert_array_equal(item["alpha"][0].numpy(), alpha)


def test_mask_probability(base):
    none = MaskedPairDataset(base, mask_prob=0.0, seed=3)
    for i in range(len(none)):
        masked, clean, alpha, _ = none.sample(i)
        np.testing.assert_array_equal(masked, clean)
        assert not alpha.any()
    item = none[0]
    assert torch.equal(item["masked"], item["clean"]) and not item["alpha"].any()
    big = SyntheticFaces(20, 5, seed=1)
    half = MaskedPairDataset(big, mask_prob=0.5, seed=3, synthesizer=BoxSynth())
    masked = [half.sample(i)[2].any() for i in range(len(half))]
    assert 35 <= sum(masked) <= 65


@pytest.mark.parametrize("real", [True, False])
def test_flip_is_applied_to_all_three_consistently(base, real):
    synth = None if real else BoxSynth()
    flipping = MaskedPairDataset(base, seed=4, flip=True, synthesizer=synth)
    plain = MaskedPairDataset(base, seed=4, flip=False, synthesizer=synth)
    flipped = 0
    for i in range(len(base)):
        m1, c1, a1, _ = flipping.sample(i)
        m0, c0, a0, _ = plain.sample(i)
        np.testing.assert_array_equal(c0, base[i][0])  # no flip: the base image itself
        if np.array_equal(c1, c0):
            np.testing.assert_array_equal(m1, m0)
            np.testing.assert_array_equal(a1, a0)
        else:
            flipped += 1
            np.testing.assert_array_equal(c1, c0[:, ::-1])
            np.testing.assert_array_equal(m1, m0[:, ::-1])  # same mask, then mirrored
            np.testing.assert_array_equal(a1, a0[:, ::-1])
    assert 2 <= flipped <= len(base) - 2


def test_epochs_seeds_and_evaluation_mode(base):
    def masked(ds, n=6):
        return [ds.sample(i)[0] for i in range(n)]

    ds = MaskedPairDataset(base, seed=5)
    e0 = masked(ds)
    assert all(np.array_equal(a, b) for a, b in zip(e0, masked(MaskedPairDataset(base, seed=5))))
    ds.set_epoch(1)
    assert sum(not np.array_equal(a, b) for a, b in zip(e0, masked(ds))) >= 4
    ds.set_epoch(0)
    assert all(np.array_equal(a, b) for a, b in zip(e0, masked(ds)))
    assert sum(not np.array_equal(a, b) for a, b in zip(e0, masked(MaskedPairDataset(base, seed=6)))) >= 4
    with pytest.raises(ConfigError):
        ds.set_epoch(-1)

    ev = MaskedPairDataset(base, seed=5, evaluation=True)
    first = [ev.sample(i) for i in range(len(base))]
    ev.set_epoch(3)  # ignored: evaluation masks are fixed
    for i, (m, clean, alpha, _) in enumerate(first):
        np.testing.assert_array_equal(m, ev.sample(i)[0])
        np.testing.assert_array_equal(clean, base[i][0])  # never flipped
        assert alpha.any()
    assert torch.equal(ev[0]["clean"], to_tensor(base[0][0]))


def test_styles_are_passed_to_a_custom_synthesizer(base):
    synth = BoxSynth()
    ds = MaskedPairDataset(base, styles=["cloth", "n95"], seed=7, synthesizer=synth)
    for i in range(len(ds)):
        ds.sample(i)
    assert set(synth.styles_seen) == {"cloth", "n95"}
    real = MaskedPairDataset(base, styles="surgical", seed=7)
    assert real.mask_synthesizer().styles == ("surgical",)


def _collect(ds, workers):
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers)
    return [b for b in loader]


def test_same_tensors_with_and_without_workers(base):
    ds = MaskedPairDataset(base, seed=8)
    ds.set_epoch(2)
    serial = _collect(ds, 0)
    parallel = _collect(ds, 2)
    assert len(serial) == len(parallel) == 3
    for a, b in zip(serial, parallel):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    ds.set_epoch(3)
    assert not torch.equal(_collect(ds, 0)[0]["masked"], serial[0]["masked"])


def test_bad_inputs(base):
    with pytest.raises(ConfigError, match="mask_prob"):
        MaskedPairDataset(base, mask_prob=1.5)
    with pytest.raises(ConfigError, match="seed"):
        MaskedPairDataset(base, seed=-2)

    class Grey:
        num_classes = 1

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return np.zeros((112, 112), np.uint8), 0

    with pytest.raises(DataError, match="item 0 of Grey"):
        MaskedPairDataset(Grey())[0]
    with pytest.raises(IndexError):
        MaskedPairDataset(base)[len(base)]


def test_flipped_flag_says_which_items_are_mirrored():
    from insightface_g2d.data.synthetic import SyntheticFaces
    from insightface_g2d.data.transforms import hflip, to_tensor

    base = SyntheticFaces(num_identities=3, images_per_identity=4, seed=5)
    ds = MaskedPairDataset(base, mask_prob=0.0, seed=1)
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        img = base[i][0]
        expected = to_tensor(hflip(img)) if bool(item["flipped"]) else to_tensor(img)
        assert torch.equal(item["clean"], expected)
        seen.add(bool(item["flipped"]))
    assert seen == {True, False}
    assert not any(bool(MaskedPairDataset(base, flip=False)[i]["flipped"]) for i in range(4))


@pytest.mark.parametrize("mask_prob,custom", [(0.6, False), (1.0, True), (0.0, False)])
def test_batched_items_equal_items_one_by_one(mask_prob, custom):
    """__getitems__ (what DataLoader calls per batch: one mask call) gives exactly __getitem__'s tensors."""
    from torch.utils.data import DataLoader, default_collate

    from insightface_g2d.masks.synthesizer import MaskSynthesizer
    from insightface_g2d.data.synthetic import SyntheticFaces

    base = SyntheticFaces(num_identities=5, images_per_identity=4, seed=2)
    synth = MaskSynthesizer(styles=("surgical", "cloth", "textured")) if custom else None
    ds = MaskedPairDataset(base, mask_prob=mask_prob, seed=4, styles=("cloth", "textured") if custom else None,
                           synthesizer=synth)
    ds.set_epoch(3)
    idx = [7, 0, 19, 7, -1, 12, 3, 4]
    batched = ds.__getitems__(idx)
    assert len(batched) == len(idx)
    for item, i in zip(batched, idx):
        one = ds[i]
        assert item.keys() == one.keys()
        for key in one:
            assert torch.equal(item[key], one[key]), (i, key)
    flips = [bool(b["flipped"]) for b in batched]
    assert any(flips) and not all(flips)
    masked = [bool(b["alpha"].any()) for b in batched]
    assert any(masked) == (mask_prob > 0) and all(masked) == (mask_prob == 1.0)
    # the DataLoader uses it: its batch equals collating the items one by one
    loader = DataLoader(ds, batch_size=4, shuffle=False)
    first = next(iter(loader))
    expect = default_collate([ds[i] for i in range(4)])
    assert all(torch.equal(first[k], expect[k]) for k in expect)
    with pytest.raises(IndexError):
        ds.__getitems__([0, 20])

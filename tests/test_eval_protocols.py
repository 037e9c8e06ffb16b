"""Masking protocols: what each one masks, determinism, masked .bin files, protocol evaluation."""
import numpy as np
import pytest
import torch

from insightface_g2d.masks.styles import MASK_STYLES
from insightface_g2d.masks.synthesizer import MaskSynthesizer
from insightface_g2d.errors import ConfigError, DataError
from insightface_g2d.evaluation.binfile import load_bin, read_bin_records, write_bin_records
from insightface_g2d.embedders.torch_network import TorchEmbedder
from insightface_g2d.evaluation.engine import evaluate_protocols
from insightface_g2d.evaluation.protocols import (
    apply_protocol,
    parse_protocol,
    protocol_plan,
    write_masked_bin,
)
from insightface_g2d.evaluation.verification import verification_metrics

from test_eval_binfile import png_bytes, smooth_faces
from test_eval_embedder import TinyNet

N_IMAGES = 12  # 6 pairs


@pytest.fixture(scope="module")
def faces():
    return smooth_faces(N_IMAGES, seed=4)


@pytest.fixture(scope="module")
def issame():
    return np.array([True, False] * (N_IMAGES // 4))


def changed(a, b):
    return np.array([not np.array_equal(x, y) for x, y in zip(a, b)])


def test_clean_changes_nothing_and_copies(faces, issame):
    out = apply_protocol(faces, issame, "clean")
    np.testing.assert_array_equal(out, faces)
    assert out is not faces and not np.shares_memory(out, faces)


def test_masked_masked_masks_lower_face_of_every_image(faces, issame):
    before = faces.copy()
    out = apply_protocol(faces, issame, "masked-masked", seed=1)
    np.testing.assert_array_equal(faces, before)  # input untouched
    assert changed(out, faces).all()
    diff = np.abs(out.astype(int) - faces).sum(-1)  # [N, H, W]
    assert (diff[:, :40] == 0).all()  # eyes and forehead never covered
    synth = MaskSynthesizer()
    alpha = np.stack([synth.apply(f, np.random.default_rng([1, i]))[1] for i, f in enumerate(faces)])
    assert (diff[alpha == 0] == 0).all()  # only mask pixels change
    assert (alpha[:, 80:100, 40:72] > 0.5).mean() > 0.95  # the mouth is under the mask
    assert (diff[:, 80:100, 40:72] > 0).mean() > 0.8


def test_masked_clean_masks_exactly_one_per_pair_alternating(faces, issame):
    out = apply_protocol(faces, issame, "masked-clean", seed=0)
    ch = changed(out, faces).reshape(-1, 2)
    assert (ch.sum(1) == 1).all()
    pair = np.arange(len(ch))
    np.testing.assert_array_equal(ch[:, 1], pair % 2 == 1)  # even pairs: first face, odd: second
    masked, style = protocol_plan(N_IMAGES, "masked-clean")
    np.testing.assert_array_equal(masked, ch.reshape(-1))
    assert style is None


def test_matches_synthesizer_with_per_image_generators(faces, issame):
    synth = MaskSynthesizer()
    for protocol, style in (("masked-masked", None), ("style:n95", "n95")):
        out = apply_protocol(faces, issame, protocol, seed=7)
        for i in (0, 5, 11):
            want, _ = synth.apply(faces[i], np.random.default_rng([7, i]), style=style)
            np.testing.assert_array_equal(out[i], want)


def test_style_protocol_uses_that_style_only(faces, issame):
    # Each style has its own colour palette: all masked faces of style:X match style X's output
    # and (for at least one face) differ from another style's output with the same generator.
    synth = MaskSynthesizer()
    out = apply_protocol(faces, issame, "style:surgical", seed=3)
    other = np.stack([synth.apply(f, np.random.default_rng([3, i]), style="cloth")[0] for i, f in enumerate(faces)])
    assert changed(out, other).any()
    assert all(parse_protocol(f"style:{s}") == ("masked-masked", s) for s in MASK_STYLES)


def test_deterministic_given_seed(faces, issame):
    a = apply_protocol(faces, issame, "masked-masked", seed=5)
    b = apply_protocol(faces, issame, "masked-masked", seed=5)
    c = apply_protocol(faces, issame, "masked-masked", seed=6)
    assert a.tobytes() == b.tobytes()
    assert changed(a, c).any()


def test_bad_protocols(faces, issame):
    with pytest.raises(ConfigError, match="unknown protocol"):
        apply_protocol(faces, issame, "masked")
    with pytest.raises(ConfigError, match="unknown mask style"):
        apply_protocol(faces, issame, "style:balaclava")
    with pytest.raises(DataError):
        apply_protocol(faces[:5], issame, "clean")


def test_write_masked_bin_keeps_unmasked_bytes(tmp_path, faces, issame):
    src = tmp_path / "src.bin"
    write_bin_records(src, [png_bytes(f) for f in faces], issame)
    src_bins, _ = read_bin_records(src)
    info = write_masked_bin(src, tmp_path / "mc.bin", "masked-clean", seed=2, progress=False)
    assert info == dict(num_pairs=6, num_masked=6, protocol="masked-clean", seed=2)
    bins, same = read_bin_records(tmp_path / "mc.bin")
    np.testing.assert_array_equal(same, issame)
    masked, _ = protocol_plan(N_IMAGES, "masked-clean")
    for i in range(N_IMAGES):
        assert (bins[i] == src_bins[i]) != masked[i]  # clean faces: original bytes; masked: new JPEG
    images, _ = load_bin(tmp_path / "mc.bin")
    ch = changed(images, faces).reshape(-1, 2)
    assert (ch.sum(1) == 1).all()
    # The masked faces are the protocol's (up to JPEG): same seed -> same masks.
    want = apply_protocol(faces, issame, "masked-clean", seed=2)
    assert np.abs(images[masked].astype(int) - want[masked]).mean() < 2.5

    write_masked_bin(src, tmp_path / "mc2.bin", "masked-clean", seed=2, progress=False)
    write_masked_bin(src, tmp_path / "mc3.bin", "masked-clean", seed=3, progress=False)
    assert (tmp_path / "mc.bin").read_bytes() == (tmp_path / "mc2.bin").read_bytes()
    assert (tmp_path / "mc.bin").read_bytes() != (tmp_path / "mc3.bin").read_bytes()
    with pytest.raises(DataError, match="overwrite"):
        write_masked_bin(src, src, "masked-masked")


def test_evaluate_protocols_reuses_clean_embeddings_correctly(faces):
    torch.manual_seed(0)
    emb = TorchEmbedder(TinyNet())
    issame = np.array([True, False] * 3)
    res = evaluate_protocols(emb, faces, issame, ("clean", "masked-clean", "masked-masked"), seed=4,
                             nfolds=2, progress=False)
    assert list(res) == ["clean", "masked-clean", "masked-masked"]
    for protocol in res:
        direct = emb.embed_images(apply_protocol(faces, issame, protocol, seed=4), progress=False)
        want = verification_metrics(direct, issame, nfolds=2)
        assert res[protocol]["accuracy"] == pytest.approx(want["accuracy"])
        np.testing.assert_allclose(res[protocol]["roc"][1], want["roc"][1])


def test_protocols_with_a_set_of_styles(faces, issame):
    """masked-clean:<a>+<b> masks the masked-clean images, drawing styles from the set only."""
    assert parse_protocol("masked-clean:n95+textured") == ("masked-clean", ("n95", "textured"))
    assert parse_protocol("masked-masked:cloth") == ("masked-masked", "cloth")
    one = apply_protocol(faces, issame, "masked-masked:cloth", seed=3)
    np.testing.assert_array_equal(one, apply_protocol(faces, issame, "style:cloth", seed=3))
    out = apply_protocol(faces, issame, "masked-clean:n95+textured", seed=3)
    plan, _ = protocol_plan(len(faces), "masked-clean")
    np.testing.assert_array_equal(changed(out, faces), plan)
    synth = MaskSynthesizer(styles=("n95", "textured"))
    for i in np.nonzero(plan)[0]:
        want, _ = synth.apply(faces[i], np.random.default_rng([3, i]))
        np.testing.assert_array_equal(out[i], want)
    with pytest.raises(ConfigError, match="unknown mask style 'paper'"):
        apply_protocol(faces, issame, "masked-clean:n95+paper")


def test_mask_images_refuses_a_synthesizer_with_a_style_subset(faces):
    """A tuple of styles builds its own synthesizer: one passed as well would be ignored, so it is refused."""
    from insightface_g2d.evaluation.protocols import mask_images

    with pytest.raises(ConfigError, match="not both"):
        mask_images(faces[:2], [0, 1], style=("n95", "cloth"), synthesizer=MaskSynthesizer())
    subset = mask_images(faces[:2], [0, 1], seed=1, style=("n95", "cloth"))
    assert subset.shape == faces[:2].shape and not np.array_equal(subset, faces[:2])

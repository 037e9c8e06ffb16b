"""IJB-B/C 1:1 on a hand-made set in the insightface IJB layout, checked against a plain-Python
recomputation of template pooling, cosine scores and TAR@FAR."""
import json
import math
import shutil

import cv2
import numpy as np
import pytest
import torch

import insightface_g2d
from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main
from insightface_g2d.data.align import ARCFACE_TEMPLATE
from insightface_g2d.embedders.base import FaceEmbedder
from insightface_g2d.errors import DataError
from insightface_g2d.evaluation import ijb
from insightface_g2d.evaluation.report import fmt_percent

CROP = 136  # loose crop size
FARS = (0.01, 0.1, 0.25, 0.5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_ijb(root, seed=0):
    """6 identities, 2-3 templates each, 1-3 media per template, 1-2 images per media.

    Each loose crop is one flat RGB colour (identity colour + per-image jitter) with five landmarks at
    a random scale/shift of the ArcFace template, so the aligned face keeps that colour exactly.
    Pairs: every pair of templates. Returns ground truth dict(colours N x 3, templates, medias,
    faceness, pairs P x 3, names).
    """
    rng = np.random.default_rng(seed)
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    base = rng.uniform(40, 215, (6, 3))
    names, colours, tids, mids, faceness, lmks, tid_of_identity = [], [], [], [], [], [], []
    tid, mid = 100, 5000
    for ident in range(6):
        for _ in range(3 if ident % 2 == 0 else 2):
            tid_of_identity.append((tid, ident))
            for _ in range(rng.integers(1, 4)):
                for _ in range(rng.integers(1, 3)):
                    n = len(names)
                    colour = np.clip(base[ident] + rng.uniform(-70, 70, 3), 0, 255).round()
                    img = np.empty((CROP, CROP, 3), np.uint8)
                    img[:] = colour.astype(np.uint8)
                    name = f"{n + 1}.png"
                    cv2.imwrite(str(root / "loose_crop" / name), img[:, :, ::-1])  # BGR on disk
                    scale = rng.uniform(0.9, 1.1)
                    lmks.append(ARCFACE_TEMPLATE * scale + rng.uniform(5, 15, 2))
                    names.append(name)
                    colours.append(colour)
                    tids.append(tid)
                    mids.append(mid)
                    faceness.append(rng.uniform(0.3, 1.0))
                mid += 1
            tid += 1
    pairs = []
    for i, (t1, id1) in enumerate(tid_of_identity):
        for t2, id2 in tid_of_identity[i + 1:]:
            pairs.append((t1, t2, int(id1 == id2)))
    for prefix in ("ijbc", "ijbb"):
        with open(root / "meta" / f"{prefix}_face_tid_mid.txt", "w") as f:
            f.writelines(f"{n} {t} {m}\n" for n, t, m in zip(names, tids, mids))
        with open(root / "meta" / f"{prefix}_name_5pts_score.txt", "w") as f:
            for n, lm, s in zip(names, lmks, faceness):
                f.write(n + " " + " ".join(f"{v:.4f}" for v in lm.ravel()) + f" {s:.4f}\n")
        with open(root / "meta" / f"{prefix}_template_pair_label.txt", "w") as f:
            f.writelines(f"{a} {b} {c}\n" for a, b, c in pairs)
    faceness = np.array([float(f"{s:.4f}") for s in faceness])
    return dict(names=names, colours=np.array(colours), templates=np.array(tids), medias=np.array(mids),
                faceness=faceness, pairs=np.array(pairs))


class ColourEmbedder(FaceEmbedder):
    """Fake embedder: [mean R, mean G, mean B] of the face centre (in [-1, 1]) and a constant 0.25."""

    rows = slice(36, 76)

    def forward(self, batch):
        centre = batch[:, :, self.rows, 36:76].mean(dim=(2, 3))
        return torch.cat([centre, torch.full((len(batch), 1), 0.25)], 1)


class LowerFaceEmbedder(ColourEmbedder):
    """Mean colour of the mouth/chin region, where masks are drawn."""

    rows = slice(86, 106)


@pytest.fixture(scope="module")
def ijb_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("ijb") / "IJBC"
    truth = make_ijb(root)
    return root, truth


def expected_scores(truth, faceness=True):
    """Plain-Python pooling: feature 2 * colour vector (face + mirror), x faceness, media mean, sum, norm."""
    feats = {}
    for i, c in enumerate(truth["colours"]):
        f = 2.0 * np.r_[c / 127.5 - 1.0, 0.25]
        if faceness:
            f = f * truth["faceness"][i]
        feats.setdefault(truth["templates"][i], {}).setdefault(truth["medias"][i], []).append(f)
    tfeat = {}
    for t, media in feats.items():
        v = sum(np.mean(images, axis=0) for images in media.values())
        tfeat[t] = v / np.linalg.norm(v)
    return np.array([float(tfeat[a] @ tfeat[b]) for a, b, _ in truth["pairs"]])


def expected_tar(scores, labels, far):
    """TAR at FAR: with k = far x impostors, the share of genuine pairs scoring above the (k+1)-th best
    impostor, linearly interpolated between whole k; NaN when k < 1."""
    neg = np.sort(scores[labels == 0])[::-1]
    pos = scores[labels == 1]
    k = far * len(neg)
    if k < 1:
        return math.nan

    def tar(j):
        return 1.0 if j >= len(neg) else float(np.mean(pos > neg[j]))

    j = int(math.floor(k))
    return tar(j) + (k - j) * (tar(j + 1) - tar(j)) if j < len(neg) else 1.0


@pytest.mark.parametrize("faceness", [True, False])
def test_scores_and_tar_match_independent_computation(ijb_set, faceness):
    root, truth = ijb_set
    r = ijb.evaluate_ijb(ColourEmbedder(), root, "IJBC", faceness=faceness, fars=FARS, progress=False)
    want = expected_scores(truth, faceness)
    np.testing.assert_allclose(r["scores"], want, atol=1e-5)
    labels = truth["pairs"][:, 2]
    assert (r["images"], r["templates"], r["pairs"]) == (len(truth["names"]), 15, 105)
    assert (r["genuine_pairs"], r["impostor_pairs"]) == (12, 93)
    for far in FARS:
        exp = expected_tar(want, labels, far)
        got = r["tar_at_far"][f"{far:.0e}"]
        if math.isnan(exp):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(exp, abs=1e-9)
    assert 0 < r["tar_at_far"]["1e-01"] < 1  # the set is neither trivial nor hopeless
    # AUC = probability that a genuine pair outscores an impostor pair (no ties here)
    pos, neg = want[labels == 1], want[labels == 0]
    assert r["auc"] == pytest.approx(np.mean(pos[:, None] > neg[None, :]), abs=1e-9)


def test_faceness_weighting_changes_scores(ijb_set):
    _, truth = ijb_set
    assert np.abs(expected_scores(truth, True) - expected_scores(truth, False)).max() > 1e-3


def test_template_features_average_media_then_sum():
    # template 7: media 1 has three images, media 2 one; template 9: one media of two images
    feats = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [3.0, 4.0]])
    ids, tf = ijb.template_features(feats, templates=[7, 7, 7, 7, 9, 9], medias=[1, 1, 1, 2, 3, 3])
    assert ids.tolist() == [7, 9]
    np.testing.assert_allclose(tf[0], np.array([1.0, 1.0]) / np.sqrt(2))  # not the 4-image mean (3, 1)
    np.testing.assert_allclose(tf[1], [0.6, 0.8])
    _, tfw = ijb.template_features(feats, [7, 7, 7, 7, 9, 9], [1, 1, 1, 2, 3, 3],
                                   faceness=[1.0, 1.0, 1.0, 3.0, 1.0, 1.0])
    np.testing.assert_allclose(tfw[0], np.array([1.0, 3.0]) / np.sqrt(10))


def test_masked_probe_masks_exactly_the_second_templates_deterministically(ijb_set):
    root, truth = ijb_set
    meta = ijb.read_ijb_meta(root, "IJBC")
    probes = ijb.probe_templates(meta, "t2")
    assert probes.tolist() == sorted(set(truth["pairs"][:, 1].tolist()))
    mask = np.isin(meta.templates, probes)
    emb = LowerFaceEmbedder()
    clean = ijb.extract_image_features(ijb.IJBFaces(meta), emb, batch_size=8, progress=False)
    masked = ijb.extract_image_features(ijb.IJBFaces(meta, mask=mask, seed=5), emb, batch_size=8, progress=False)
    changed = np.abs(masked - clean).max(1) > 1e-3
    assert mask.sum() > 0 and not mask.all()
    np.testing.assert_array_equal(changed, mask)
    # workers and batch size do not change which mask a face gets
    again = ijb.extract_image_features(ijb.IJBFaces(meta, mask=mask, seed=5), emb, batch_size=5, num_workers=2,
                                       progress=False)
    np.testing.assert_array_equal(again, masked)
    other_seed = ijb.extract_image_features(ijb.IJBFaces(meta, mask=mask, seed=6), emb, batch_size=8,
                                            progress=False)
    assert np.abs(other_seed - masked).max() > 1e-3
    r = ijb.evaluate_ijb(emb, root, "IJBC", mask_probe=True, seed=5, progress=False, meta=meta)
    assert r["masked_images"] == int(mask.sum()) and r["masked_templates"] == len(probes)
    t1m = np.isin(truth["pairs"][:, 0], probes)
    assert r["pair_masking"]["masked-masked"] == int(t1m.sum())  # t2 is always masked
    assert r["pair_masking"]["masked-clean"] == int((~t1m).sum()) and r["pair_masking"]["clean-clean"] == 0
    half = ijb.probe_templates(meta, "half", seed=1)
    assert len(half) == 7 and half.tolist() == ijb.probe_templates(meta, "half", seed=1).tolist()


def test_cli_with_a_real_network_writes_consistent_outputs(ijb_set, tmp_path):
    root, _ = ijb_set
    torch.manual_seed(0)
    ckpt = tmp_path / "g2d_t.pt"
    torch.save(insightface_g2d.get_model("g2d_t", num_features=16).state_dict(), ckpt)
    out = tmp_path / "out"
    rc = run_cli(main, ["ijb", "--model", f"tiny=g2d_t:{ckpt}", "--root", str(root), "--dataset", "ijbb",
                        "--mask-probe", "--out", str(out), "--workers", "0", "--batch-size", "8", "--quiet",
                        "--device", "cpu"])
    assert rc == 0
    doc = json.loads((out / "ijb_ijbb_masked.json").read_text())
    r = doc["results"]["tiny"]
    assert r["dataset"] == "IJBB" and r["mask_probe"] and r["faceness"]
    scores = np.load(out / "ijb_ijbb_masked_tiny_scores.npy")
    assert scores.shape == (105,) and np.all(np.abs(scores) <= 1 + 1e-6)
    row = [l for l in (out / "ijb_ijbb_masked.md").read_text().splitlines() if l.startswith("| tiny")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:] == [fmt_percent(r["tar_at_far"][k]) for k in r["tar_at_far"]] + [fmt_percent(r["auc"])]
    assert cells[3] == "n/a" and cells[-2] != "n/a"  # FAR 1e-6 is not measurable on 93 impostors
    assert (out / "ijb_ijbb_masked_roc.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_layouts_raise_data_errors(ijb_set, tmp_path):
    root, _ = ijb_set
    with pytest.raises(DataError, match="ijbc_face_tid_mid.txt"):
        ijb.read_ijb_meta(tmp_path, "IJBC")
    with pytest.raises(DataError, match="unknown IJB dataset"):
        ijb.read_ijb_meta(root, "IJBX")
    bad = tmp_path / "IJBC"
    shutil.copytree(root / "meta", bad / "meta")
    pts = bad / "meta" / "ijbc_name_5pts_score.txt"
    lines = pts.read_text().splitlines()
    pts.write_text("\n".join([lines[1], lines[0]] + lines[2:]) + "\n")
    with pytest.raises(DataError, match="same order"):
        ijb.read_ijb_meta(bad, "IJBC")
    pts.write_text("\n".join(lines) + "\n")
    pair_file = bad / "meta" / "ijbc_template_pair_label.txt"
    pair_file.write_text(pair_file.read_text() + "100 999 1\n")
    with pytest.raises(DataError, match="template 999 has no image"):
        ijb.read_ijb_meta(bad, "IJBC")
    pair_file.write_text("100 101 1\n100 102 x\n")
    with pytest.raises(DataError, match="integers"):
        ijb.read_ijb_meta(bad, "IJBC")
    pair_file.write_text("100 101 1\n")
    meta = ijb.read_ijb_meta(bad, "IJBC")  # loose_crop/ is missing: say which image, before any work
    with pytest.raises(DataError, match=r"IJB images are missing \(first: .*loose_crop/1\.png"):
        ijb.evaluate_ijb(ColourEmbedder(), bad, "IJBC", progress=False)
    (bad / "loose_crop").mkdir()
    (bad / "loose_crop" / "1.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"^cannot read IJB image .*1\.png"):  # one line, even from a worker
        ijb.extract_image_features(ijb.IJBFaces(meta), ColourEmbedder(), num_workers=1, progress=False)
    with pytest.raises(DataError, match="genuine and impostor"):
        ijb.summarize_scores(np.ones(3, bool), np.zeros(3))

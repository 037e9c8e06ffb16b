"""A pairs list sorted by class (all genuine, then all impostors) scores the same through a `.bin`
(`g2d-data bin` then `g2d-eval verify`) as through `g2d-eval pairs`, and both on balanced folds."""
import json

import cv2
import numpy as np
import pytest
import torch

from insightface_g2d import get_model
from insightface_g2d.cli import data as data_cli
from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main as eval_main
from insightface_g2d.evaluation.binfile import load_bin
from insightface_g2d.evaluation.pairs import read_pairs
from insightface_g2d.evaluation.verification import verification_metrics

from test_eval_binfile import smooth_faces
from test_eval_verification import ref_accuracy_from_dist, ref_folds, structured


def normalised_dist(emb):
    emb = np.asarray(emb, dtype=np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return list(((emb[0::2] - emb[1::2]) ** 2).sum(1))


def test_genuine_first_set_is_scored_on_balanced_folds():
    rng = np.random.default_rng(4)
    emb, issame = structured(rng, 600, 16, 1.3)
    # 200 genuine then 200 impostors, as pairsDevTest.txt lists them
    order = np.r_[np.nonzero(issame)[0][:200], np.nonzero(~issame)[0][:200]]
    emb = emb.reshape(-1, 2, 16)[order].reshape(-1, 16)
    issame = issame[order]
    g, i = int(issame.sum()), int((~issame).sum())
    m = verification_metrics(emb, issame)
    assert m["folds"] == "balanced"
    # independent folds: the f-th tenth of the genuine pairs and the f-th tenth of the impostors
    gen, imp = ref_folds(g, 10), ref_folds(i, 10)
    folds = [gen[f] + [g + j for j in imp[f]] for f in range(10)]
    want, want_std, _ = ref_accuracy_from_dist(normalised_dist(emb), list(issame), folds)
    assert m["accuracy"] == pytest.approx(want, abs=1e-12) and m["accuracy_std"] == pytest.approx(want_std, abs=1e-12)
    # contiguous folds (one class each) would report something else
    single, _, _ = ref_accuracy_from_dist(normalised_dist(emb), list(issame), ref_folds(400, 10))
    assert abs(single - want) > 0.01
    # a set whose contiguous folds hold both classes keeps arcface_torch's contiguous folds
    assert verification_metrics(emb[::-1].copy(), issame[::-1].copy())["folds"] == "balanced"
    mixed = np.tile([True, False], 200)
    assert verification_metrics(emb, mixed)["folds"] == "contiguous"


@pytest.mark.parametrize("g,i,k", [(130, 70, 10), (7, 40, 10), (500, 500, 10), (33, 34, 4)])
def test_balanced_folds_share_each_class_evenly_and_keep_order(g, i, k):
    from insightface_g2d.evaluation.bin_order import bin_pair_order
    from insightface_g2d.evaluation.verification import balanced_fold_ids

    issame = np.r_[np.ones(g, bool), np.zeros(i, bool)]
    ids = balanced_fold_ids(issame, k)
    sizes = np.bincount(ids, minlength=k)
    assert sorted(sizes.tolist(), reverse=True) == [len(f) for f in ref_folds(g + i, k)]
    for cls, n in ((issame, g), (~issame, i)):
        per = np.bincount(ids[cls], minlength=k)
        assert np.all(np.abs(per - n * sizes / (g + i)) < 1) and per.sum() == n  # its share, within one pair
        assert np.all(np.diff(ids[cls]) >= 0)  # order kept within the class
    order, exact = bin_pair_order(issame, None, k)
    assert exact and np.array_equal(ids[order], np.repeat(np.arange(k), np.bincount(ids[order], minlength=k)))


def people_tree(root, n_people, seed):
    """root/<Pk>/<Pk>_0001.png and _0002.png; a person's second photo is the first, a quarter changed."""
    faces = smooth_faces(n_people, seed=seed)
    changes = smooth_faces(n_people, seed=seed + 1)
    for k, face in enumerate(faces):
        (root / f"P{k}").mkdir(parents=True)
        second = (0.75 * face + 0.25 * changes[k]).round().astype(np.uint8)
        for n, img in ((1, face), (2, second)):
            cv2.imwrite(str(root / f"P{k}" / f"P{k}_{n:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def lines_genuine_first(n_people, m):
    """m matched then m mismatched pairs, LFW layout."""
    matched = [f"P{k}\t1\t2" for k in range(m)]
    mismatched = [f"P{k}\t{1 + k % 2}\tP{(k + 7) % n_people}\t{2 - k % 2}" for k in range(m)]
    return matched + mismatched


@pytest.mark.parametrize("header", [True, False])
def test_bin_of_a_genuine_first_list_scores_what_pairs_scores(tmp_path, capsys, header):
    torch.manual_seed(0)
    torch.save(get_model("g2d_t", num_features=16).state_dict(), tmp_path / "model.pt")
    model = f"g2d_t:{tmp_path / 'model.pt'}"
    root = tmp_path / "photos"
    people_tree(root, 60, seed=3)
    body = lines_genuine_first(60, 50)
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(("50\n" if header else "") + "\n".join(body) + "\n")
    out = tmp_path / "set.bin"
    assert run_cli(data_cli.main, ["bin", "--root", str(root), "--pairs", str(pairs_file), "--out", str(out),
                                   "--quiet"]) == 0
    bin_said = capsys.readouterr().err
    images, issame = load_bin(out)
    # the .bin holds the list's pairs (each face found again among the photos, up to JPEG loss); then
    # the photos are made byte for byte the .bin's faces, so both commands see the same pixels
    pairs = read_pairs(pairs_file)
    names = sorted({p.replace(".jpg", ".png") for p in pairs.paths})
    photos = np.stack([cv2.cvtColor(cv2.imread(str(root / n)), cv2.COLOR_BGR2RGB) for n in names]).astype(np.int16)
    found = [names[int(np.abs(photos - img.astype(np.int16)).mean(axis=(1, 2, 3)).argmin())] for img in images]
    listed = sorted((pairs.paths[2 * k].replace(".jpg", ".png"), pairs.paths[2 * k + 1].replace(".jpg", ".png"),
                     bool(pairs.issame[k])) for k in range(len(pairs)))
    assert sorted((found[2 * k], found[2 * k + 1], bool(issame[k])) for k in range(len(issame))) == listed
    for name, img in zip(found, images):
        cv2.imwrite(str(root / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

    assert run_cli(eval_main, ["verify", "--model", model, "--bin", str(out), "--json", str(tmp_path / "v.json"),
                               "--quiet"]) == 0
    assert run_cli(eval_main, ["pairs", "--model", model, "--root", str(root), "--pairs", str(pairs_file),
                               "--json", str(tmp_path / "p.json"), "--quiet"]) == 0
    err = capsys.readouterr().err
    verified = json.loads((tmp_path / "v.json").read_text())["targets"]["set"]["clean"]
    paired = next(iter(json.loads((tmp_path / "p.json").read_text())["targets"].values()))["clean"]
    assert verified["accuracy"] == paired["accuracy"] and verified["accuracy_std"] == paired["accuracy_std"]
    assert verified["fold_accuracies"] == paired["fold_accuracies"] and verified["auc"] == paired["auc"]
    assert "written fold by fold" in bin_said
    assert verified["folds"] == "contiguous"  # the .bin's own contiguous folds are the balanced ones
    assert paired["folds"] == ("given" if header else "balanced")
    assert ("balanced folds instead" in err) == (not header)


def test_old_genuine_first_bin_is_rebalanced_and_says_so(tmp_path, capsys):
    from insightface_g2d.evaluation.binfile import write_bin

    torch.manual_seed(0)
    torch.save(get_model("g2d_t", num_features=16).state_dict(), tmp_path / "model.pt")
    faces = smooth_faces(40, seed=5)
    write_bin(tmp_path / "old.bin", faces, [True] * 10 + [False] * 10)
    assert run_cli(eval_main, ["verify", "--model", f"g2d_t:{tmp_path / 'model.pt'}", "--bin",
                               str(tmp_path / "old.bin"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("note: old: 10 contiguous folds of these 20 pairs would hold "
                                                    "one class only")]


def test_real_lfw_devtest_bin_matches_pairs(lfw_root, tmp_path, capsys):
    """The README's chain on real photos: the first 50 + 50 DevTest pairs, genuine first."""
    lines = (lfw_root / "pairsDevTest.txt").read_text().splitlines()
    n = int(lines[0])
    sub = tmp_path / "pairsDevTest.txt"
    sub.write_text("\n".join(["50"] + lines[1:51] + lines[1 + n:51 + n]) + "\n")
    torch.manual_seed(0)
    torch.save(get_model("g2d_t", num_features=16).state_dict(), tmp_path / "model.pt")
    model = f"g2d_t:{tmp_path / 'model.pt'}"
    common = ["--root", str(lfw_root), "--pairs", str(sub), "--landmarks", str(lfw_root / "landmarks5.tsv")]
    assert run_cli(data_cli.main, ["bin", *common, "--out", str(tmp_path / "dev.bin"), "--quiet"]) == 0
    images, issame = load_bin(tmp_path / "dev.bin")
    assert issame.tolist() == ([True] * 5 + [False] * 5) * 10  # every contiguous tenth: 5 + 5
    assert run_cli(eval_main, ["verify", "--model", model, "--bin", str(tmp_path / "dev.bin"),
                               "--json", str(tmp_path / "v.json"), "--quiet"]) == 0
    verified = json.loads((tmp_path / "v.json").read_text())["targets"]["dev"]["clean"]
    # what g2d-eval pairs computes, on the .bin's faces in the list's order with the list's folds
    from insightface_g2d.evaluation.bin_order import bin_pair_order

    pairs = read_pairs(sub)
    order, exact = bin_pair_order(pairs.issame, pairs.folds)
    assert exact
    from insightface_g2d.embedders.factory import build_embedder

    emb = build_embedder(model).embed_images(images, progress=False)
    back = np.empty_like(emb)
    rows = np.stack([2 * order, 2 * order + 1], axis=1).reshape(-1)
    back[rows] = emb
    want = verification_metrics(back, pairs.issame, folds=pairs.folds)
    assert verified["accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
    assert verified["accuracy_std"] == pytest.approx(want["accuracy_std"], abs=1e-12)

"""Real-mask benchmark pieces: pairs drawn from a photo folder (make-pairs) and the end-to-end
evaluation (real-masks), on small folders the tests build themselves."""
import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from insightface_g2d.cli.evaluate import main as eval_main
from insightface_g2d.faces.face_finding import FaceFinder, Finding
from insightface_g2d.data.image_io import write_image
from insightface_g2d.data.synthetic import render_face
from insightface_g2d.errors import ConfigError, DataError
from insightface_g2d.evaluation.pairs import read_pairs
from insightface_g2d.evaluation.photo_pairs import collect_photos, draw_protocol_pairs
from insightface_g2d.evaluation.real_masks import evaluate_real_masks, find_pairs_files, gap_share
from insightface_g2d.evaluation.verification import verification_metrics

PEOPLE, CLEAN_EACH, MASKED_EACH = 12, 6, 5


def _face(identity, photo, masked):
    img, _ = render_face(7, identity, photo + (100 if masked else 0))
    if masked:
        img = img.copy()
        img[62:, 20:92] = (90, 140, 200)  # a flat "mask" over the lower face
    return img


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory):
    """clean/<id>/c<k>.png and masked/<id>/m<k>.png (+ an augmented copy m<k>_flip.png per masked photo)."""
    root = tmp_path_factory.mktemp("rmfd_like")
    for i in range(PEOPLE):
        for k in range(CLEAN_EACH):
            write_image(root / "clean" / f"p{i:02d}" / f"c{k}.png", _face(i, k, False))
        for k in range(MASKED_EACH):
            img = _face(i, k, True)
            write_image(root / "masked" / f"p{i:02d}" / f"m{k}.png", img)
            write_image(root / "masked" / f"p{i:02d}" / f"m{k}_flip.png", img[:, ::-1])
    return root


def test_collect_photos_from_two_trees(photo_tree):
    ps = collect_photos(photo_tree / "clean", photo_tree / "masked", exclude=["*_flip.*"])
    s = ps.summary()
    assert ps.root.resolve() == photo_tree.resolve()
    assert (s["photos"], s["masked"], s["clean"]) == (PEOPLE * (CLEAN_EACH + MASKED_EACH), PEOPLE * MASKED_EACH,
                                                        PEOPLE * CLEAN_EACH)
    assert s["identities"] == s["identities_with_both"] == PEOPLE
    assert s["dropped"] == {"excluded by '*_flip.*'": PEOPLE * MASKED_EACH}
    assert all(p.path.startswith("masked/") == p.masked for p in ps.photos)
    assert all((photo_tree / p.path).is_file() for p in ps.photos)


def test_masked_glob_and_list_agree(tmp_path, photo_tree):
    one = tmp_path / "one"
    for sub in ("clean", "masked"):
        shutil.copytree(photo_tree / sub, one, dirs_exist_ok=True)
    by_glob = collect_photos(one, "*/m*", exclude=["*_flip.*"])
    listing = tmp_path / "masked.txt"
    listing.write_text("\n".join(p.path for p in by_glob.photos if p.masked) + "\n")
    by_list = collect_photos(one, listing, exclude=["*_flip.*"])
    assert [(p.path, p.identity, p.masked) for p in by_glob.photos] == \
        [(p.path, p.identity, p.masked) for p in by_list.photos]
    assert by_glob.summary()["masked"] == PEOPLE * MASKED_EACH
    with pytest.raises(ConfigError, match="neither a folder"):
        collect_photos(one, "masked_photos")


def test_duplicates_across_identities_are_dropped(tmp_path, photo_tree):
    root = tmp_path / "dup"
    shutil.copytree(photo_tree, root)
    shutil.copy(root / "clean" / "p00" / "c0.png", root / "clean" / "p01" / "c9.png")   # filed under two people
    shutil.copy(root / "clean" / "p02" / "c0.png", root / "clean" / "p02" / "c9.png")   # a copy within one
    ps = collect_photos(root / "clean", root / "masked", exclude=["*_flip.*"])
    kept = {p.path for p in ps.photos}
    assert "clean/p00/c0.png" not in kept and "clean/p01/c9.png" not in kept
    assert ("clean/p02/c0.png" in kept) != ("clean/p02/c9.png" in kept)
    assert ps.summary()["dropped"]["same file under two identities"] == 2
    assert ps.summary()["dropped"]["byte-identical copy within an identity"] == 1
    # a flipped copy kept by --exclude-less runs is different bytes: nothing else is dropped
    assert ps.summary()["photos"] == PEOPLE * (CLEAN_EACH + MASKED_EACH) + 2 - 3


@pytest.mark.parametrize("protocol", ["clean-clean", "masked-clean", "masked-masked"])
def test_pairs_balanced_distinct_person_disjoint(photo_tree, protocol):
    photos = collect_photos(photo_tree / "clean", photo_tree / "masked", exclude=["*_flip.*"]).photos
    kind = {p.path: p for p in photos}
    rows = draw_protocol_pairs(photos, protocol, 200, nfolds=4, seed=3)
    assert len(rows) == 200
    first_masked, second_masked = {"clean-clean": (False, False), "masked-clean": (True, False),
                                   "masked-masked": (True, True)}[protocol]
    fold_of = {}
    for a, b, same, fold in rows:
        assert kind[a].masked == first_masked and kind[b].masked == second_masked
        assert (kind[a].identity == kind[b].identity) == same and a != b
        for ident in (kind[a].identity, kind[b].identity):
            assert fold_of.setdefault(ident, fold) == fold  # every person in one fold only
    per_fold = Counter((fold, same) for _, _, same, fold in rows)
    assert set(per_fold.values()) == {25}  # 4 folds x (25 genuine + 25 impostor)
    keys = [tuple(sorted(r[:2])) if first_masked == second_masked else r[:2] for r in rows]
    assert len(set(keys)) == len(keys)
    genuine_people = Counter(kind[a].identity for a, _, same, _ in rows if same)
    assert max(genuine_people.values()) - min(genuine_people.values()) <= 1  # round-robin over people
    assert draw_protocol_pairs(photos, protocol, 200, nfolds=4, seed=3) == rows
    assert draw_protocol_pairs(photos, protocol, 200, nfolds=4, seed=4) != rows


def test_pairs_fewer_when_the_photos_hold_fewer(photo_tree):
    photos = collect_photos(photo_tree / "clean", photo_tree / "masked", exclude=["*_flip.*"]).photos
    rows = draw_protocol_pairs(photos, "masked-masked", 10_000, nfolds=2, seed=0)
    genuine = sum(r[2] for r in rows)
    assert genuine == PEOPLE * MASKED_EACH * (MASKED_EACH - 1) // 2  # every distinct masked pair of a person
    assert len(rows) == 2 * genuine
    with pytest.raises(ConfigError, match="at least 20 pairs"):
        draw_protocol_pairs(photos, "clean-clean", 10, nfolds=10)


def test_make_pairs_cli_writes_files_pairs_reads(tmp_path, photo_tree, capsys):
    out = tmp_path / "pairs"
    code = eval_main(["make-pairs", "--root", str(photo_tree / "clean"), "--masked", str(photo_tree / "masked"),
                      "--exclude", "*_flip.*", "--pairs", "120", "--folds", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"--root {photo_tree.resolve()}" in printed
    files = find_pairs_files(out)
    assert set(files) == {"clean-clean", "masked-clean", "masked-masked"}
    for protocol, path in files.items():
        pairs = read_pairs(path)
        assert len(pairs) == 120 and pairs.issame.sum() == 60
        assert sorted(set(pairs.folds.tolist())) == [0, 1, 2]
        assert all((photo_tree / p).is_file() for p in pairs.paths)
    report = json.loads((out / "pairs_report.json").read_text())
    assert report["summary"]["masked"] == PEOPLE * MASKED_EACH
    assert len(report["dropped"]["excluded by '*_flip.*'"]) == PEOPLE * MASKED_EACH


def test_gap_share():
    teacher = {"clean-clean": 0.98, "masked-clean": 0.88, "masked-masked": 0.90}
    student = {"clean-clean": 0.97, "masked-clean": 0.93, "masked-masked": 0.89}
    assert gap_share(student, teacher, "masked-clean") == pytest.approx(0.5)
    assert gap_share(student, teacher, "masked-masked") == pytest.approx(-0.125)
    assert gap_share(student, dict(teacher, **{"masked-clean": 0.99}), "masked-clean") is None


class _TableFinder(FaceFinder):
    """Places every photo on fixed landmarks except those whose name says 'm3' (as if the mask hid it)."""

    name = "table"

    def _find(self, img):
        from insightface_g2d.data.align import template

        if img[0, 0, 0] == 1:  # the photos the test marks as unplaceable
            return Finding(reason="no face", outcome="no face")
        return Finding(landmarks=template(112).astype(np.float32) * img.shape[0] / 112, score=1.0, faces=1,
                       source="table", outcome="found")


class _MeanColour(torch.nn.Module):
    """A deterministic toy 'network': per-channel means of the upper and lower face halves, plus a bias."""

    def forward(self, x):
        top, bottom = x[:, :, :56].mean(dim=(2, 3)), x[:, :, 56:].mean(dim=(2, 3))
        return torch.cat([top, bottom, torch.ones(len(x), 1)], dim=1)


def test_real_masks_end_to_end_equals_independent_computation(tmp_path, photo_tree):
    data = tmp_path / "photos"
    shutil.copytree(photo_tree, data)
    marked = data / "masked" / "p00" / "m1.png"
    img = _face(0, 1, True)
    img[0, 0] = (1, 1, 1)
    write_image(marked, img)
    pairs_dir = tmp_path / "pairs"
    assert eval_main(["make-pairs", "--root", str(data / "clean"), "--masked", str(data / "masked"), "--exclude",
                      "*_flip.*", "--pairs", "80", "--folds", "2", "--out", str(pairs_dir)]) == 0
    files = find_pairs_files(pairs_dir)
    out = tmp_path / "eval"
    models = [("toy", _MeanColour()), ("upper", torch.nn.Sequential(_MeanColour(), torch.nn.Identity()))]
    doc = evaluate_real_masks(models, data, files, detector=_TableFinder(), out_dir=str(out), progress=False)
    assert doc["photos"]["placed"] == doc["photos"]["total"] - 1
    # independent: embed each photo's crop (landmarks = the template, so the crop is the photo) by hand
    from insightface_g2d.data.image_io import read_image_file

    net = _MeanColour()
    for protocol, path in files.items():
        pairs = read_pairs(path)
        faces = np.stack([read_image_file(data / p) for p in pairs.paths])
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        emb = net(x).numpy()
        want = verification_metrics(emb, pairs.issame, folds=pairs.folds)["accuracy"]
        assert doc["results"]["toy"][protocol]["accuracy"] == pytest.approx(want, abs=1e-9)
        uses = sum("masked/p00/m1.png" in p for p in pairs.paths)
        assert doc["counts"][protocol]["pairs_with_unplaced_photo"] == uses
    report = (out / "align_report.tsv").read_text().splitlines()
    assert len(report) == 1 + doc["photos"]["total"]
    assert any(line.startswith("masked/p00/m1.png\tFalse") for line in report)
    assert "gap recovered" in (out / "real_masks.md").read_text()
    skipped = evaluate_real_masks(models[:1], data, files, detector=_TableFinder(), unplaced="skip", progress=False)
    for protocol in files:
        c = doc["counts"][protocol]
        assert skipped["counts"][protocol]["pairs"] == c["pairs"] - c["pairs_with_unplaced_photo"]


def test_real_masks_refuses_bad_input(tmp_path):
    with pytest.raises(DataError, match="make-pairs"):
        find_pairs_files(tmp_path)
    (tmp_path / "pairs_clean_clean.txt").write_text("a.png\tb.png\t1\n")
    with pytest.raises(ConfigError, match="--reference"):
        evaluate_real_masks([("toy", _MeanColour())], tmp_path, find_pairs_files(tmp_path), reference="teacher")


def test_lfw_whole_photos_writes_masked_photos_and_pairs(tmp_path, lfw_root):
    from insightface_g2d.data.image_io import read_image_file
    from insightface_g2d.experiments.lfw_whole_photos import write_whole_photo_pairs

    lines = (lfw_root / "pairsDevTest.txt").read_text().splitlines()
    small = tmp_path / "pairs_small.txt"
    small.write_text("\n".join(["2"] + lines[1:3] + lines[501:503]) + "\n")
    out = write_whole_photo_pairs(lfw_root, tmp_path / "whole", pairs_file=small, progress=False)
    files = find_pairs_files(out)
    assert set(files) == {"clean-clean", "masked-clean", "masked-masked"}
    mc = read_pairs(files["masked-clean"])
    assert mc.issame.tolist() == [True, True, False, False]
    assert all(p.startswith("masked/") for p in mc.paths[0::2]) and all(p.startswith("clean/") for p in mc.paths[1::2])
    first = mc.paths[0]
    masked, clean = read_image_file(out / first), read_image_file(out / first.replace("masked/", "clean/", 1))
    assert masked.shape == clean.shape == (250, 250, 3)
    changed = np.abs(masked.astype(int) - clean.astype(int)).max(axis=2) > 30
    assert changed[150:].mean() > 5 * changed[:100].mean()  # the mask sits on the lower face
    stamp = (out / first).stat().st_mtime_ns
    write_whole_photo_pairs(lfw_root, out, pairs_file=small, progress=False)  # a rerun keeps what is there
    assert (out / first).stat().st_mtime_ns == stamp
    # end to end from the command line, with the kit's own front end placing the whole photos
    pytest.importorskip("dlib")
    code = eval_main(["real-masks", "--root", str(out), "--pairs-dir", str(out), "--model", "toy=g2d_t:random",
                      "--out", str(tmp_path / "eval"), "--quiet"])
    assert code == 0
    doc = json.loads((tmp_path / "eval" / "real_masks.json").read_text())
    names = {p.split("/", 1)[1] for p in mc.paths}
    assert doc["photos"]["total"] == 2 * len(names)  # each photo clean and masked
    assert doc["photos"]["placed"] >= doc["photos"]["total"] - 1
    assert set(doc["counts"]) == {"clean-clean", "masked-clean", "masked-masked"}
    assert (tmp_path / "eval" / "align_report.tsv").is_file() and (tmp_path / "eval" / "crops.npz").is_file()
    # a rerun reuses the crops and the model's embeddings: g2d_t:random draws new weights at every build,
    # so equal results mean the stored embeddings were used
    assert eval_main(["real-masks", "--root", str(out), "--pairs-dir", str(out), "--model", "toy=g2d_t:random",
                      "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    again = json.loads((tmp_path / "eval" / "real_masks.json").read_text())
    assert again["results"] == doc["results"]
    assert len(list((tmp_path / "eval" / "embeddings").glob("*.npy"))) == 1


RMFD_EXCLUDES = ["*_dark.*", "*_flip.*", "*_noise.*", "*_rotate*", "*/wangfei/*"]  # wangfei: an LFW DevTrain person


@pytest.fixture(scope="module")
def rmfd_root():
    """RMFD's AFDB folders (G2D_RMFD_ROOT: the folder holding AFDB_face_dataset and
    AFDB_masked_face_dataset); skip when it is not set."""
    import os
    from pathlib import Path

    root = Path(os.environ.get("G2D_RMFD_ROOT", ""))
    if not os.environ.get("G2D_RMFD_ROOT") or not (root / "AFDB_masked_face_dataset").is_dir():
        pytest.skip("RMFD not found: set G2D_RMFD_ROOT to the folder holding AFDB_face_dataset and "
                    "AFDB_masked_face_dataset")
    return root


def test_rmfd_pairs_leave_out_augmented_copies(rmfd_root):
    ps = collect_photos(rmfd_root / "AFDB_face_dataset", rmfd_root / "AFDB_masked_face_dataset",
                        exclude=RMFD_EXCLUDES)
    import re

    augmented = re.compile(r"_(dark|flip|noise|rotate)\d*\.")
    assert not any(augmented.search(p.path) for p in ps.photos)
    dropped = sum(len(v) for k, v in ps.dropped.items() if k.startswith("excluded") and "wangfei" not in k)
    on_disk = sum(1 for p in (rmfd_root / "AFDB_masked_face_dataset").rglob("*") if augmented.search(p.name))
    assert dropped == on_disk > 0
    digests = {}
    for p in ps.photos:  # no photo kept is filed under two identities
        from insightface_g2d.evaluation.photo_pairs import _digest

        digests.setdefault(_digest(ps.root / p.path), set()).add(p.identity)
    assert all(len(ids) == 1 for ids in digests.values())
    for protocol in ("clean-clean", "masked-clean", "masked-masked"):
        rows = draw_protocol_pairs(ps.photos, protocol, 2000)
        assert sum(r[2] for r in rows) * 2 == len(rows) > 1000


# ---------------------------------------------------------------- paired differences, several pairs sets

def test_paired_difference_equals_scipy_paired_t():
    from scipy import stats

    from insightface_g2d.evaluation.real_masks import paired_difference

    rng = np.random.default_rng(0)
    ref = rng.uniform(0.5, 0.8, size=10)
    model = ref + rng.normal(0.02, 0.03, size=10)
    d = paired_difference(model, ref)
    test = stats.ttest_rel(model, ref)
    ci = test.confidence_interval(0.95)
    assert d["mean"] == pytest.approx(np.mean(model - ref), abs=1e-12)
    assert (d["low"], d["high"]) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))
    assert d["df"] == 9 and d["folds"] == 10
    # the interval is the paired one: a shift common to both models changes nothing
    shifted = paired_difference(model + np.arange(10) * 0.01, ref + np.arange(10) * 0.01)
    assert (shifted["low"], shifted["high"]) == (pytest.approx(d["low"]), pytest.approx(d["high"]))
    assert paired_difference([0.7], [0.6])["low"] is None
    with pytest.raises(DataError, match="same folds"):
        paired_difference([0.7, 0.8], [0.6])


def test_pool_differences_by_hand():
    from scipy import stats

    from insightface_g2d.evaluation.real_masks import paired_difference, pool_differences

    rng = np.random.default_rng(1)
    sets = [(rng.uniform(0.5, 0.8, 10), rng.uniform(0.5, 0.8, 10)) for _ in range(5)]
    pooled = pool_differences([paired_difference(a, b) for a, b in sets])
    means = [np.mean(a - b) for a, b in sets]
    ses = [np.std(a - b, ddof=1) / np.sqrt(10) for a, b in sets]
    half = stats.t.ppf(0.975, 9) * np.mean(ses)
    assert pooled["mean"] == pytest.approx(np.mean(means), abs=1e-12)
    assert pooled["low"] == pytest.approx(np.mean(means) - half, abs=1e-12)
    assert pooled["high"] == pytest.approx(np.mean(means) + half, abs=1e-12)
    assert (pooled["sets"], pooled["folds"], pooled["df"]) == (5, 50, 9)


def _hand_fold_accuracies(data, pairs):
    """Fold accuracies of the toy network on one pairs file, computed without real_masks (the
    _TableFinder crop of a placed photo is the photo itself)."""
    from insightface_g2d.data.image_io import read_image_file

    faces = np.stack([read_image_file(data / p) for p in pairs.paths])
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    return verification_metrics(_MeanColour()(x).numpy(), pairs.issame, folds=pairs.folds)["fold_accuracies"]


class _Scaled(torch.nn.Module):
    """The toy network with the lower-face features weighted: a second model that differs from it."""

    def forward(self, x):
        e = _MeanColour()(x)
        return torch.cat([e[:, :3], 3.0 * e[:, 3:6], e[:, 6:]], dim=1)


def test_real_masks_paired_and_pooled_over_pairs_sets(tmp_path, photo_tree, capsys):
    from scipy import stats

    from insightface_g2d.evaluation.real_masks import paired_difference, pool_differences

    sets = []
    for seed in (0, 1):
        out = tmp_path / f"pairs_s{seed}"
        assert eval_main(["make-pairs", "--root", str(photo_tree / "clean"), "--masked", str(photo_tree / "masked"),
                          "--exclude", "*_flip.*", "--pairs", "80", "--folds", "4", "--seed", str(seed),
                          "--out", str(out)]) == 0
        sets.append(find_pairs_files(out))
    capsys.readouterr()
    models = [("toy", _MeanColour()), ("scaled", _Scaled())]
    one = evaluate_real_masks(models, photo_tree, sets[0], detector=_TableFinder(), out_dir=str(tmp_path / "one"),
                              progress=False)
    both = evaluate_real_masks(models, photo_tree, sets, detector=_TableFinder(), out_dir=str(tmp_path / "both"),
                               progress=False)
    assert "sets" not in one and [st["label"] for st in both["sets"]] == ["pairs_s0", "pairs_s1"]
    # one set: the paired difference per protocol is scipy's paired t on the two models' fold accuracies
    for protocol in one["counts"]:
        a = one["results"]["scaled"][protocol]["fold_accuracies"]
        b = one["results"]["toy"][protocol]["fold_accuracies"]
        assert b == pytest.approx(_hand_fold_accuracies(photo_tree, read_pairs(sets[0][protocol])), abs=1e-12)
        d = one["paired"]["scaled"][protocol]
        ci = stats.ttest_rel(a, b).confidence_interval(0.95)
        assert d["mean"] == pytest.approx(np.mean(np.subtract(a, b)), abs=1e-12)
        assert (d["low"], d["high"]) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))
        assert "toy" not in one["paired"]  # the reference (first model) has no difference from itself
    # several sets: each as on its own, pooled as pool_differences says
    for protocol in one["counts"]:
        assert both["sets"][0]["results"]["scaled"][protocol] == one["results"]["scaled"][protocol]
        per = [st["paired"]["scaled"][protocol] for st in both["sets"]]
        assert both["paired"]["scaled"][protocol] == pool_differences(per)
        for st, files in zip(both["sets"], sets):
            a = _hand_fold_accuracies(photo_tree, read_pairs(files[protocol]))
            assert st["results"]["toy"][protocol]["fold_accuracies"] == pytest.approx(a, abs=1e-12)
            assert st["paired"]["scaled"][protocol] == paired_difference(
                st["results"]["scaled"][protocol]["fold_accuracies"], a)
        assert both["results"]["toy"][protocol]["accuracy"] == pytest.approx(
            np.mean([st["results"]["toy"][protocol]["accuracy"] for st in both["sets"]]))
    tsv = (tmp_path / "both" / "real_masks_paired.tsv").read_text().splitlines()
    assert len(tsv) == 1 + 3 * 3 and {ln.split("\t")[0] for ln in tsv[1:]} == {"pairs_s0", "pairs_s1", "pooled"}
    row = next(ln.split("\t") for ln in tsv if ln.startswith("pooled\tscaled\ttoy\tmasked-clean"))
    assert float(row[6]) == pytest.approx(both["paired"]["scaled"]["masked-clean"]["mean"], abs=1e-6)
    assert float(row[7]) == pytest.approx(both["paired"]["scaled"]["masked-clean"]["low"], abs=1e-6)
    md = both["markdown"]
    assert "Paired difference from toy" in md and "pairs_s1" in md
    saved = json.loads((tmp_path / "both" / "real_masks.json").read_text())
    assert saved["paired"]["scaled"]["clean-clean"]["sets"] == 2


def test_real_masks_cli_takes_several_pairs_dirs_and_extends_the_crop_cache(tmp_path, photo_tree, monkeypatch,
                                                                             capsys):
    import insightface_g2d.evaluation.real_masks as rm
    from insightface_g2d.data.image_io import fit_square, read_image_file

    placed_calls = []

    def fake_place(root, rels, detector, progress=True, assume_cropped=False):
        placed_calls.append(list(rels))
        crops = np.stack([fit_square(read_image_file(root / r), 112) for r in rels]) if rels else \
            np.empty((0, 112, 112, 3), np.uint8)
        return crops, [dict(path=r, placed=True, outcome="found") for r in rels]

    monkeypatch.setattr(rm, "place_photos", fake_place)
    monkeypatch.setattr("insightface_g2d.embedders.factory.build_embedder",
                        lambda spec, device="cpu": _TorchToy())
    dirs = []
    for seed in (0, 3):
        out = tmp_path / f"s{seed}"
        assert eval_main(["make-pairs", "--root", str(photo_tree / "clean"), "--masked", str(photo_tree / "masked"),
                          "--exclude", "*_flip.*", "--pairs", "40", "--folds", "2", "--seed", str(seed),
                          "--out", str(out)]) == 0
        dirs.append(str(out))
    out = tmp_path / "eval"
    common = ["real-masks", "--root", str(photo_tree), "--model", "a=x", "--model", "b=y", "--out", str(out),
              "--quiet", "--device", "cpu"]
    assert eval_main(common + ["--pairs-dir", dirs[0]]) == 0
    first = set(placed_calls[0])
    assert eval_main(common + ["--pairs-dir", dirs[0], "--pairs-dir", dirs[1]]) == 0
    printed = capsys.readouterr().out
    assert "Per pairs set" in printed and "s3" in printed
    # the second run placed only the photos the first had not
    assert len(placed_calls) == 2 and not first & set(placed_calls[1])
    report = (out / "align_report.tsv").read_text().splitlines()
    assert len(report) == 1 + len(first | set(placed_calls[1]))
    doc = json.loads((out / "real_masks.json").read_text())
    assert [st["label"] for st in doc["sets"]] == ["s0", "s3"]


class _TorchToy:
    """An embedder object for the CLI test: the toy network's embedding of uint8 crops."""

    def embed_images(self, crops, batch_size, flip, progress, desc=None):
        x = torch.from_numpy(np.asarray(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        return _MeanColour()(x).numpy()

"""Pairs files (LFW layout, generic path lists), image folders, and a small real-LFW run."""

import cv2
import numpy as np
import pytest
import torch

from insightface_g2d.data.align import align_face, read_landmarks_tsv
from insightface_g2d.errors import DataError
from insightface_g2d.embedders.torch_network import TorchEmbedder
from insightface_g2d.evaluation.pairs import evaluate_pairs, load_pair_images, read_pairs

from test_eval_binfile import smooth_faces
from test_eval_embedder import TinyNet


def write(path, text):
    path.write_text(text)
    return path


def lfw_lines(folds, per):
    """An LFW-layout body: per fold `per` matched then `per` mismatched lines."""
    lines = []
    for f in range(folds):
        lines += [f"P{f}_{j}\t1\t2" for j in range(per)]
        lines += [f"A{f}_{j}\t1\tB{f}_{j}\t3" for j in range(per)]
    return lines


def test_lfw_layout_with_folds_header(tmp_path):
    p = read_pairs(write(tmp_path / "pairs.txt", "3\t2\n" + "\n".join(lfw_lines(3, 2)) + "\n"))
    assert p.layout == "lfw" and len(p) == 12
    assert p.folds.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert p.issame.tolist() == [True, True, False, False] * 3
    assert p.paths[:2] == ["P0_0/P0_0_0001.jpg", "P0_0/P0_0_0002.jpg"]
    assert p.paths[4:6] == ["A0_0/A0_0_0001.jpg", "B0_0/B0_0_0003.jpg"]
    sub = p.take_per_fold(2, folds=[0, 2])
    assert len(sub) == 4 and sub.issame.tolist() == [True, False, True, False] and sub.folds.tolist() == [0, 0, 2, 2]


def test_lfw_dev_header_balanced_folds_and_headerless(tmp_path):
    body = [f"M{j} 1 2" for j in range(20)] + [f"X{j} 1 Y{j} 2" for j in range(20)]
    p = read_pairs(write(tmp_path / "dev.txt", "20\n" + "\n".join(body)))
    assert p.folds.tolist() == [j * 10 // 20 for j in range(20)] * 2
    assert all((p.issame[p.folds == f]).sum() == 2 for f in range(10))  # balanced folds
    q = read_pairs(write(tmp_path / "mfr2.txt", "\n".join(body[:3] + body[25:27])))  # MFR2: no header, spaces
    assert q.folds is None and q.issame.tolist() == [True] * 3 + [False] * 2


def test_generic_layouts(tmp_path):
    tab = read_pairs(write(tmp_path / "mlfw.txt", "a/x 1.jpg\tb/y.jpg\t1\nc.jpg\td.jpg\t0\n"))
    assert tab.layout == "generic" and tab.paths == ["a/x 1.jpg", "b/y.jpg", "c.jpg", "d.jpg"]
    assert tab.issame.tolist() == [True, False] and tab.folds is None
    csv = read_pairs(write(tmp_path / "p.csv", "path1,path2,label\nq.png,r.png,same\ns.png,t.png,false\n"))
    assert csv.paths == ["q.png", "r.png", "s.png", "t.png"] and csv.issame.tolist() == [True, False]
    folds = read_pairs(write(tmp_path / "f.txt", "a.jpg b.jpg 1 0\nc.jpg d.jpg 0 1\n"))
    assert folds.folds.tolist() == [0, 1]


@pytest.mark.parametrize(
    "text,match",
    [
        ("2\t1\nA\t1\t2\nB\t1\tC\t2\n", "header says 2 folds"),
        ("1\t1\nB\t1\tC\t2\nA\t1\t2\n", "matched then"),
        ("A\t1\t2\nthis line is not a pair at all\n", r":2: cannot parse"),
        ("a.jpg b.jpg 1\nA 1 2\n", "mixes"),
        ("a.jpg b.jpg maybe\n", "cannot parse"),
    ],
)
def test_malformed_pairs_files(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        read_pairs(write(tmp_path / "bad.txt", text))


@pytest.fixture
def png_tree(tmp_path):
    """root/data/<name>/<name>_000k.png for names P0..P2 (like MFR2: png, one folder deeper)."""
    imgs = smooth_faces(6, size=112, seed=9)
    k = 0
    for name in ("P0", "P1", "P2"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for n in (1, 2):
            cv2.imwrite(str(tmp_path / "data" / name / f"{name}_{n:04d}.png"), cv2.cvtColor(imgs[k], cv2.COLOR_RGB2BGR))
            k += 1
    return tmp_path, imgs


def test_folder_images_extension_and_subfolder_found(png_tree):
    root, imgs = png_tree
    pairs = read_pairs(write(root / "pairs.txt", "P0 1 2\nP1 2 P2 1\n"))
    out = load_pair_images(root, pairs)  # root is the parent of data/, extension .png found on disk
    np.testing.assert_array_equal(out, imgs[[0, 1, 3, 4]])


def test_missing_images_listed(png_tree):
    root, _ = png_tree
    pairs = read_pairs(write(root / "pairs.txt", "P0 1 2\nP0 1 Q9 1\nP1 7 8\n"))
    with pytest.raises(DataError, match=r"3 image\(s\).*first: P1/P1_0007.png, P1/P1_0008.png, Q9/Q9_0001.png"):
        load_pair_images(root, pairs)


def test_landmarks_required_for_every_image(png_tree):
    root, _ = png_tree
    pairs = read_pairs(write(root / "pairs.txt", "P0 1 2\n"))
    with pytest.raises(DataError, match="no landmarks.*P0/P0_0002.png"):
        load_pair_images(root, pairs, landmarks={"P0/P0_0001.png": np.zeros((5, 2))})


def test_real_lfw_subset(lfw_root):
    pairs = read_pairs(lfw_root / "pairs.txt")
    assert len(pairs) == 6000 and pairs.layout == "lfw"
    assert np.bincount(pairs.folds).tolist() == [600] * 10
    sub = pairs.take_per_fold(60, folds=[0, 1])  # 30 matched + 30 mismatched from each of 2 folds
    assert len(sub) == 120 and sub.issame.sum() == 60

    landmarks = read_landmarks_tsv(lfw_root / "landmarks5.tsv")
    assert len(landmarks) == 13233
    images = load_pair_images(lfw_root, sub, landmarks)  # root holds lfw-deepfunneled/
    assert images.shape == (240, 112, 112, 3)
    first = cv2.cvtColor(cv2.imread(str(lfw_root / "lfw-deepfunneled" / sub.paths[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(images[0], align_face(first, landmarks[sub.paths[0]]))
    assert first.shape == (250, 250, 3) and not np.array_equal(images[0], cv2.resize(first, (112, 112)))

    torch.manual_seed(0)
    res = evaluate_pairs(TorchEmbedder(TinyNet()), lfw_root, sub, landmarks=landmarks,
                         protocols=("clean", "masked-clean"), progress=False)
    for m in res.values():
        assert m["num_pairs"] == 120 and len(m["fold_accuracies"]) == 2  # the file's folds
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["auc"] <= 1
    assert res["clean"]["accuracy"] != res["masked-clean"]["accuracy"] or \
        not np.array_equal(res["clean"]["roc"][1], res["masked-clean"]["roc"][1])

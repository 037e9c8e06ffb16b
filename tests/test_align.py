"""Five-point alignment: Umeyama similarity, warping, landmarks TSV."""
import math

import cv2
import numpy as np
import pytest
from skimage.transform import SimilarityTransform, warp

from insightface_g2d.data.align import (ARCFACE_TEMPLATE, align_face, estimate_similarity,
                                        read_landmarks_tsv, template, transform_points)
from insightface_g2d.errors import DataError


def _similarity(scale, angle_deg, tx, ty):
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]])


def test_template_values():
    assert ARCFACE_TEMPLATE.shape == (5, 2) and ARCFACE_TEMPLATE.dtype == np.float32
    np.testing.assert_allclose(ARCFACE_TEMPLATE[0], [38.2946, 51.6963])
    np.testing.assert_allclose(ARCFACE_TEMPLATE[4], [70.7299, 92.2041])
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE * 2)


@pytest.mark.parametrize("seed", range(6))
def test_estimate_similarity_matches_skimage(seed):
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 250, size=(5, 2))
    dst = ARCFACE_TEMPLATE + rng.normal(0, 4, size=(5, 2)) if seed % 2 else rng.uniform(0, 112, size=(5, 2))
    ours = estimate_similarity(src, dst)
    ref = SimilarityTransform()
    assert ref.estimate(src, dst)
    np.testing.assert_allclose(ours, ref.params[:2], rtol=1e-9, atol=1e-9)


def test_estimate_similarity_recovers_exact_transform():
    m = _similarity(1.7, -23.0, 31.0, -12.5)
    src = ARCFACE_TEMPLATE.astype(np.float64) * 1.3 + 40
    dst = transform_points(src, m)
    np.testing.assert_allclose(estimate_similarity(src, dst), m, atol=1e-9)
    # a mirrored target is not a similarity: the fit stays a proper rotation (det > 0)
    fit = estimate_similarity(src, dst * [-1, 1])
    assert np.linalg.det(fit[:, :2]) > 0


@pytest.mark.parametrize("bad", [np.zeros((5, 2)), np.ones((5, 3)), np.full((5, 2), np.nan), np.ones(10)])
def test_estimate_similarity_rejects_bad_points(bad):
    with pytest.raises(DataError):
        estimate_similarity(bad, ARCFACE_TEMPLATE)


def test_align_face_puts_landmarks_on_template():
    """Dots drawn at the landmarks of a rotated, scaled face land on the template after align_face."""
    m = _similarity(1.9, 17.0, 40.0, 12.0)
    lmk = transform_points(ARCFACE_TEMPLATE, m)
    img = np.zeros((260, 280, 3), np.uint8)
    for x, y in lmk:
        cv2.circle(img, (int(round(x * 16)), int(round(y * 16))), 5 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    out = align_face(img, lmk)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    grey = out[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0:112, 0:112]
    for tx, ty in ARCFACE_TEMPLATE:
        win = (np.abs(xs - tx) < 6) & (np.abs(ys - ty) < 6)
        w = grey * win
        cx, cy = (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()
        assert abs(cx - tx) < 0.3 and abs(cy - ty) < 0.3


def test_align_face_rejects_bad_input():
    with pytest.raises(DataError):
        align_face(np.zeros((50, 50), np.uint8), ARCFACE_TEMPLATE)
    with pytest.raises(DataError):
        align_face(np.zeros((50, 50, 3), np.uint8), ARCFACE_TEMPLATE[:4])


def test_align_face_refuses_landmarks_far_outside_the_image():
    img = np.full((100, 120, 3), 90, np.uint8)
    lmk = ARCFACE_TEMPLATE.astype(np.float64) + 4.0
    assert align_face(img, lmk).shape == (112, 112, 3)
    cut = lmk.copy()
    cut[3:, 1] += 60.0  # mouth below the border (a face cut by the frame) still aligns
    align_face(img, cut)
    for x, y in ((1e30, 50.0), (50.0, -1e30), (241.0, 50.0), (50.0, -101.0), (np.nan, 3.0)):
        bad = lmk.copy()
        bad[2] = (x, y)
        with pytest.raises(DataError, match=r"^landmarks of a/b.jpg in l.tsv: landmark.* (3 at|NaN)"):
            align_face(img, bad, where="landmarks of a/b.jpg in l.tsv")


def test_absurd_landmarks_are_one_line_errors_of_g2d_eval_pairs(tmp_path, capsys):
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.evaluate import main

    for name in ("P0", "P1"):
        (tmp_path / name).mkdir()
        for n in (1, 2):
            cv2.imwrite(str(tmp_path / name / f"{name}_{n:04d}.jpg"), np.full((150, 150, 3), 120, np.uint8))
    (tmp_path / "pairs.txt").write_text("P0\t1\t2\nP0\t1\tP1\t1\n")
    good = "\t".join(f"{v:g}" for v in (ARCFACE_TEMPLATE + 20).ravel())
    rows = [f"{p}\t{good}" for p in ("P0/P0_0001.jpg", "P0/P0_0002.jpg", "P1/P1_0001.jpg")]
    rows[1] = rows[1].replace(good.split("\t")[0], "1e30", 1)
    (tmp_path / "l.tsv").write_text(HEADER + "\n".join(rows) + "\n")
    argv = ["pairs", "--model", "g2d_t:random", "--root", str(tmp_path), "--pairs", str(tmp_path / "pairs.txt"),
            "--landmarks", str(tmp_path / "l.tsv"), "--nfolds", "2", "--quiet"]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{tmp_path / 'l.tsv'}:3: landmark coordinate 1e+30 is not a pixel position" in err


def test_align_face_lfw_matches_skimage_warp_and_template(lfw_root):
    """On LFW: pixels equal an independent skimage warp, and the warped landmarks sit on the template.

    The dlib landmarks of the shared LFW copy do not fit the ArcFace template exactly (per-face
    fit residual ~3 px RMS: dlib's nose tip and mouth corners are defined differently), so the
    template check is on the average over faces: each landmark within 2 px, the eye midpoint's
    x within 0.5 px and the median inter-ocular distance within 3 % of the template's.
    """
    lmks = read_landmarks_tsv(lfw_root / "landmarks5.tsv")
    keys = sorted(lmks)[::60]
    # pixels: one image against skimage.transform.warp (bilinear, same geometry)
    key = keys[7]
    img = cv2.cvtColor(cv2.imread(str(lfw_root / "lfw-deepfunneled" / key)), cv2.COLOR_BGR2RGB)
    ours = align_face(img, lmks[key]).astype(np.float64)
    tform = SimilarityTransform()
    tform.estimate(lmks[key], ARCFACE_TEMPLATE)
    ref = warp(img, tform.inverse, output_shape=(112, 112), order=1, preserve_range=True)
    assert np.abs(ours - ref)[2:-2, 2:-2].mean() < 1.0
    # landmarks: the similarity maps them onto the template on average
    warped = np.stack([transform_points(lmks[k], estimate_similarity(lmks[k], ARCFACE_TEMPLATE)) for k in keys])
    assert np.all(np.linalg.norm(warped.mean(0) - ARCFACE_TEMPLATE, axis=1) < 2.0)
    eye_mid = (warped[:, 0] + warped[:, 1]) / 2
    assert abs(eye_mid[:, 0].mean() - (ARCFACE_TEMPLATE[0, 0] + ARCFACE_TEMPLATE[1, 0]) / 2) < 0.5
    iod = np.median(np.linalg.norm(warped[:, 1] - warped[:, 0], axis=1))
    assert abs(iod / np.linalg.norm(ARCFACE_TEMPLATE[1] - ARCFACE_TEMPLATE[0]) - 1) < 0.03


def test_read_landmarks_tsv_lfw(lfw_root):
    lmks = read_landmarks_tsv(lfw_root / "landmarks5.tsv")
    assert len(lmks) == 13233
    first = lmks["AJ_Cook/AJ_Cook_0001.jpg"]
    assert first.dtype == np.float32 and first.shape == (5, 2)
    np.testing.assert_allclose(first[0], [104.0, 115.5])
    np.testing.assert_allclose(first[4], [145.0, 161.0])


HEADER = "path\tx1\ty1\tx2\ty2\tx3\ty3\tx4\ty4\tx5\ty5\tsource\n"
ROW = "a/b.jpg\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\thog\n"


def test_read_landmarks_tsv_small(tmp_path):
    p = tmp_path / "l.tsv"
    p.write_text(HEADER + ROW + "\n" + ROW.replace("a/b", "c/d").replace("\t1\t", "\t1.5\t"))
    out = read_landmarks_tsv(p)
    assert sorted(out) == ["a/b.jpg", "c/d.jpg"]
    np.testing.assert_array_equal(out["a/b.jpg"], np.arange(1, 11, dtype=np.float32).reshape(5, 2))
    assert out["c/d.jpg"][0, 0] == 1.5


@pytest.mark.parametrize("text, where", [
    (HEADER + ROW + "x.jpg\t1\t2\t3\n", ":3:"),                       # short row
    (HEADER + ROW.replace("\t5\t", "\tfive\t"), ":2:"),                # non-numeric
    (HEADER + ROW.replace("\t5\t", "\tnan\t"), ":2:"),                 # non-finite
    (HEADER + ROW.replace("\t5\t", "\t1e30\t"), ":2:"),                # no pixel position
    (HEADER + ROW.replace("\t5\t", "\t1e39\t"), ":2:"),                # inf in float32
    (HEADER + ROW + ROW, ":3:"),                                        # duplicate
    ("path\tx1\ty1\n" + ROW, ":1:"),                                    # header lacks columns
])
def test_read_landmarks_tsv_malformed(tmp_path, text, where):
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(DataError) as err:
        read_landmarks_tsv(p)
    assert "bad.tsv" + where in str(err.value)


def test_read_landmarks_tsv_missing(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_landmarks_tsv(tmp_path / "nope.tsv")

"""Where the front end places faces: tight crops made from true landmarks, the 68-point refit of clear
faces, the photo taken as one face crop (``assume_cropped``, ``g2d-data align --assume-cropped``), and
(with LFW and the [dlib] extra) the shipped front end on LFW's photos and tight crops of them."""
import numpy as np
import pytest

from insightface_g2d.faces import finders
from insightface_g2d.data.align import ARCFACE_TEMPLATE, transform_points
from insightface_g2d.faces.landmark_net import frames_from_boxes, frames_from_landmarks
from insightface_g2d.faces.landmark_refit import HOG_CALIBRATION, box_from_landmarks, disagreement
from insightface_g2d.faces.tight_crops import FACE_BOX_SIDE, eyes_placed, face_box, tight_crop
from insightface_g2d.errors import DataError

WARP = np.array([[1.6, 0.0, 70.0], [0.0, 1.6, 40.0]])  # aligned frame -> an upright face in a 320 x 300 photo
LMK = transform_points(ARCFACE_TEMPLATE, WARP)


def test_a_tight_crop_fills_its_side_with_the_face_box_and_carries_the_landmarks():
    cx, cy, side = face_box(LMK)
    assert side == pytest.approx(FACE_BOX_SIDE * 1.6, rel=1e-6)  # 144.8 photo px for a 1.6x face
    assert (cx, cy) == pytest.approx((70 + 1.6 * 56.0, 40 + 1.6 * 69.6), abs=1e-6)
    photo = np.zeros((300, 320, 3), np.uint8)
    x, y = np.round(LMK[0]).astype(int)
    photo[y - 1:y + 2, x - 1:x + 2] = 255  # a white dot on the left eye
    for fill, size in ((1.0, 96), (0.7, 224), (0.85, 128)):
        crop, lmk = tight_crop(photo, LMK, fill, size)
        assert crop.shape == (size, size, 3)
        scale = size / (side / fill)
        np.testing.assert_allclose(lmk, (LMK - [cx, cy]) * scale + size / 2, atol=1e-6)
        # the face box is fill x the crop side, centred
        assert side * scale == pytest.approx(fill * size)
        peak = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
        assert np.hypot(peak[1] - lmk[0, 0], peak[0] - lmk[0, 1]) < 1.5
    iod = np.linalg.norm(lmk[1] - lmk[0])
    assert eyes_placed(lmk + [0.09 * iod, 0.0], lmk) and not eyes_placed(lmk + [0.11 * iod, 0.0], lmk)


def test_the_refit_box_is_the_detector_box_its_calibration_maps_to_the_face():
    box = np.array(box_from_landmarks(LMK, HOG_CALIBRATION))
    assert box[2] - box[0] == pytest.approx(box[3] - box[1])
    frame = frames_from_boxes(box[None], HOG_CALIBRATION)[0]
    np.testing.assert_allclose(frame, frames_from_landmarks(LMK[None])[0], atol=1e-6)  # an upright face: exact
    assert box[2] - box[0] == pytest.approx(112 * 1.6 / HOG_CALIBRATION[2])
    assert disagreement(LMK, LMK) == 0.0
    moved = LMK.copy()
    moved[3] += [0, 0.2 * np.linalg.norm(LMK[1] - LMK[0])]  # one mouth corner 0.2 eye distances down
    assert disagreement(moved, LMK) == pytest.approx(0.2)


def test_assume_cropped_needs_the_g2d_front_end(tmp_path, capsys):
    spec = finders.finder_spec("g2d", assume_cropped=True, refit=False)
    assert spec[2]["assume_cropped"] is True and spec[2]["refit"] is False
    assert finders.finder_spec("g2d")[2]["refit"] is True  # the default refits
    with pytest.raises(DataError, match="--assume-cropped works with the g2d front end"):
        finders.finder_spec("dlib", assume_cropped=True)
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.data import main

    (tmp_path / "photos" / "a").mkdir(parents=True)
    (tmp_path / "lmk.tsv").write_text("path\tx1\ty1\tx2\ty2\tx3\ty3\tx4\ty4\tx5\ty5\n")
    assert run_cli(main, ["align", "--src", str(tmp_path / "photos"), "--out", str(tmp_path / "out"), "--landmarks",
                          str(tmp_path / "lmk.tsv"), "--assume-cropped", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--assume-cropped" in err[0] and "--landmarks" in err[0]


# ------------------------------------------------------------------------------------ LFW
def _lfw_photos(lfw_root, n):
    from insightface_g2d.data.align import read_landmarks_tsv

    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    table = read_landmarks_tsv(lfw_root / "landmarks5.tsv")
    people = [ln.split("\t")[0] for ln in (lfw_root / "peopleDevTest.txt").read_text().splitlines()[1:40]]
    keys = [k for k in sorted(table) if k.split("/")[0] in people][:n]
    return [(k, table[k].astype(np.float64)) for k in keys]


def _error(found, true):
    return float(np.linalg.norm(np.asarray(found) - true, axis=1).mean() / np.linalg.norm(true[1] - true[0]))


def test_clear_faces_are_refitted_to_lfw_convention_and_masked_ones_keep_the_network(lfw_root, one_torch_thread):
    from insightface_g2d.data.image_io import read_image_file
    from insightface_g2d.masks.synthesizer import MaskSynthesizer, rng_for

    refit = finders.build_finder(finders.finder_spec("g2d", pick="center"))
    net = finders.build_finder(finders.finder_spec("g2d", pick="center", refit=False))
    synth = MaskSynthesizer()
    clean, masked, kept = [], [], 0
    for key, true in _lfw_photos(lfw_root, 12):
        img = read_image_file(lfw_root / "lfw-deepfunneled" / key)
        a, b = refit.find(img), net.find(img)
        clean.append((_error(a.landmarks, true), _error(b.landmarks, true), a.refit))
        photo = synth.apply_landmarks(img, true, rng_for(0, key), style="surgical")[0]
        m, n = refit.find(photo), net.find(photo)
        masked.append((_error(m.landmarks, true), _error(n.landmarks, true)))
        kept += not m.refit
        if not m.refit:  # no refit: exactly the network's points
            np.testing.assert_array_equal(m.landmarks, n.landmarks)
    clean, masked = np.array(clean), np.array(masked)
    # 1,549 DevTest photos: 85 % of clean faces refitted, 12 % of masked ones; the network's points are
    # 0.054 (median) from LFW's (dlib's HOG + 68 points), the refit's 0.010; here 8 of 12 clean faces
    assert clean[:, 2].mean() >= 0.6 and np.median(clean[:, 0]) < 0.025 and np.median(clean[:, 1]) > 0.035
    assert kept >= 8 and np.median(masked[:, 0]) < 0.15  # here 0.10 (the network 0.07 on 1,549 photos)


def test_tight_lfw_crops_are_found_and_placed_with_and_without_assume_cropped(lfw_root, one_torch_thread):
    from insightface_g2d.data.image_io import read_image_file
    from insightface_g2d.masks.synthesizer import MaskSynthesizer, rng_for

    found = finders.build_finder(finders.finder_spec("g2d"))
    cropped = finders.build_finder(finders.finder_spec("g2d", assume_cropped=True))
    synth = MaskSynthesizer()
    placed = {"g2d": [], "assume_cropped": []}
    for i, (key, true) in enumerate(_lfw_photos(lfw_root, 6)):
        img = read_image_file(lfw_root / "lfw-deepfunneled" / key)
        if i % 2:
            img = synth.apply_landmarks(img, true, rng_for(0, key), style=("n95", "cloth", "textured")[i // 2])[0]
        for fill, size in ((0.7, 96), (0.85, 160), (1.0, 224), (1.0, 128)):
            crop, lmk = tight_crop(img, true, fill, size)
            for name, finder in (("g2d", found), ("assume_cropped", cropped)):
                f = finder.find(crop)
                assert f.landmarks is not None  # always found
                placed[name].append(eyes_placed(f.landmarks, lmk))
    # 100 DevTest photos x 2 conditions x 12 crops: found 100 %, both eyes placed 95-96 %; the misses are
    # turned heads, where the network's eyes are off LFW's convention (and the refit is not kept)
    assert np.mean(placed["g2d"]) >= 0.75  # here 19 of 24 and np.mean(placed["assume_cropped"]) >= 0.75


def test_a_photo_assumed_cropped_always_gets_a_face_inside_it(one_torch_thread):
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    noise = np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8)
    f = finders.build_finder(finders.finder_spec("g2d", assume_cropped=True)).find(noise)
    assert f.outcome == "found" and f.source == "whole photo" and f.faces == 1 and f.box == (0.0, 0.0, 120.0, 120.0)
    assert 0.0 <= f.score <= 1.0 and ((f.landmarks > -60) & (f.landmarks < 180)).all()
    assert finders.build_finder(finders.finder_spec("g2d")).find(noise).outcome == "no face"

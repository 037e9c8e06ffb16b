"""The masked-face front end: view geometry, the landmark network's file, face merging and picking,
the finder registry, align's per-photo report, and (with LFW and the [dlib] extra) the shipped front
end on real masked faces and `g2d-data train-landmarks` on a few of them."""
import cv2
import numpy as np
import pytest
import torch

from insightface_g2d.faces import finders
from insightface_g2d.data.align import ARCFACE_TEMPLATE, alignment_matrix, transform_points
from insightface_g2d.faces.face_finding import FaceFinder, Finding
from insightface_g2d.faces.front_end_folder import load_landmark_net
from insightface_g2d.faces.g2d_front_end import (TEMPLATE_IOD, G2DFrontEnd, face_sizes, holds_faces, merge_faces,
                                               pick_by_landmarks)
from insightface_g2d.faces.landmark_net import (INPUT, LandmarkNet, crop_views, frames_from_boxes,
                                               frames_from_landmarks, save_landmark_net,
                                               template_in_view, view_to_photo)
from insightface_g2d.faces.landmark_training import SWAP, box_matches, calibration_of, epoch_order, make_batch, yaw_of
from insightface_g2d.faces.align_folder import align_folder, read_align_report
from insightface_g2d.errors import DataError

WARP = np.array([[1.9, -0.3, 60.0], [0.3, 1.9, 40.0]])  # aligned frame -> a 320 x 300 photo
LMK = transform_points(ARCFACE_TEMPLATE, WARP)


def test_views_of_the_true_frame_put_the_points_on_the_template():
    frames = frames_from_landmarks(LMK[None])
    np.testing.assert_allclose(frames[0], alignment_matrix(LMK), atol=1e-9)
    img = np.random.default_rng(0).integers(0, 256, (300, 320, 3), dtype=np.uint8)
    views, mats = crop_views(img, frames)
    assert views.shape == (1, INPUT, INPUT, 3) and views.dtype == np.uint8
    in_view = transform_points(LMK, mats[0])
    np.testing.assert_allclose(in_view, template_in_view(), atol=1e-4)
    # the template spans the 112 frame shrunk to INPUT / (1.4 * 112) and shifted by the margin
    np.testing.assert_allclose(template_in_view(), (ARCFACE_TEMPLATE + 22.4) * INPUT / 156.8, atol=1e-4)
    np.testing.assert_allclose(view_to_photo(in_view[None], mats)[0], LMK, atol=1e-6)


def test_box_frames_follow_their_calibration_and_calibration_inverts_it():
    boxes = np.array([[100.0, 50.0, 200.0, 150.0], [10.0, 20.0, 50.0, 60.0]])
    f = frames_from_boxes(boxes, (0.1, -0.2, 1.5))
    for box, m in zip(boxes, f):
        w = box[2] - box[0]
        centre = [(box[0] + box[2]) / 2 + 0.1 * w, (box[1] + box[3]) / 2 - 0.2 * w]
        np.testing.assert_allclose(transform_points([centre], m)[0], [56.0, 56.0], atol=1e-9)
        assert m[0, 0] == pytest.approx(112.0 / (1.5 * w)) and m[0, 1] == 0.0
    # faces whose frames are those boxes' frames: calibration_of recovers (0.1, -0.2, 1.5)
    lmks = [transform_points(ARCFACE_TEMPLATE, cv2.invertAffineTransform(m)) for m in f]
    assert calibration_of(boxes, lmks) == pytest.approx([0.1, -0.2, 1.5], abs=1e-4)
    assert box_matches([90, 140, 200, 250], LMK) and not box_matches([200, 0, 320, 120], LMK)


def test_network_shapes_size_and_float16_file(tmp_path):
    torch.manual_seed(0)
    net = LandmarkNet().eval()
    assert 400_000 < sum(p.numel() for p in net.parameters()) < 700_000
    views = np.random.default_rng(1).integers(0, 256, (3, INPUT, INPUT, 3), dtype=np.uint8)
    points, prob = net.predict(views)
    assert points.shape == (3, 5, 2) and prob.shape == (3,) and ((prob > 0) & (prob < 1)).all()
    save_landmark_net(net, tmp_path, {"epochs": 0})
    assert (tmp_path / "landmarks.pt").stat().st_size < 2_000_000  # float16 on disk
    back = load_landmark_net(tmp_path)
    p2, q2 = back.predict(views)
    np.testing.assert_allclose(p2, points, atol=0.05)  # float16 weights: within a twentieth of a pixel
    np.testing.assert_allclose(q2, prob, atol=2e-3)
    (tmp_path / "landmarks.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot load landmark weights"):
        load_landmark_net(tmp_path)
    with pytest.raises(DataError, match="train-landmarks"):
        load_landmark_net(tmp_path / "nowhere")


def test_a_network_of_other_widths_loads_from_its_config(tmp_path):
    torch.manual_seed(1)
    net = LandmarkNet(widths=(8, 12, 20, 24), hidden=48).eval()
    assert net.head[1].out_features == 48
    convs = [m.out_channels for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert convs == [8, 12, 12, 20, 20, 24, 24, 24]
    save_landmark_net(net, tmp_path, {"epochs": 0, "hidden": 48, "widths": [8, 12, 20, 24]})
    back = load_landmark_net(tmp_path)
    assert back.head[1].out_features == 48 and back.features[0].out_channels == 8
    views = np.random.default_rng(2).integers(0, 256, (2, INPUT, INPUT, 3), dtype=np.uint8)
    np.testing.assert_allclose(back.predict(views)[0], net.predict(views)[0], atol=0.05)


def test_merge_and_pick():
    a = ARCFACE_TEMPLATE.astype(np.float64)
    faces = np.stack([a, a + 3.0, a * 2 + 200, a + [400, 0]])  # 0 and 1 are the same face; 2 is larger
    prob = np.array([0.7, 0.9, 0.8, 0.6])
    kept = merge_faces(faces, prob)
    assert kept.tolist() == [1, 2, 3]  # the more probable of the pair, then by probability
    assert pick_by_landmarks(faces[kept], (600, 600), "largest") == 1
    # centre pick: eye-mouth centre nearest (300, 300): face 2 (centre ~ (312, 344)) is nearest
    assert pick_by_landmarks(faces[kept], (600, 600), "center") == 1
    assert pick_by_landmarks(faces[kept], (120, 120), "center") == 0


def _turned(lmk, squeeze):
    """Landmarks [5, 2] of the head turned: x squeezed towards the nose by `squeeze` (the eyes close up)."""
    out = np.asarray(lmk, np.float64).copy()
    out[:, 0] = out[2, 0] + squeeze * (out[:, 0] - out[2, 0])
    return out


def test_face_sizes_are_the_frontal_eye_distance_and_shrink_less_than_it_as_heads_turn():
    a = ARCFACE_TEMPLATE.astype(np.float64)
    assert TEMPLATE_IOD == pytest.approx(np.linalg.norm(a[1] - a[0]))
    frontal = transform_points(a, WARP)
    iod = np.linalg.norm(frontal[1] - frontal[0])
    np.testing.assert_allclose(face_sizes(frontal[None]), [iod], rtol=1e-6)  # a similarity of the template
    turned = transform_points(_turned(a, 0.6), WARP)
    assert np.linalg.norm(turned[1] - turned[0]) == pytest.approx(0.6 * iod, rel=1e-3)
    assert face_sizes(turned[None])[0] > 0.75 * iod  # the eye-mouth height keeps the size
    assert face_sizes(np.zeros((0, 5, 2))).shape == (0,)
    # "largest" picks by that size: the turned head of the larger person wins over a smaller frontal face
    small_frontal = a * 1.5 + 300
    assert np.linalg.norm(small_frontal[1] - small_frontal[0]) > 0.6 * iod
    assert pick_by_landmarks(np.stack([small_frontal, turned]), (600, 600), "largest") == 1


def test_a_centre_guess_holds_a_misfitted_face_or_a_group_but_not_a_part_of_it():
    a = ARCFACE_TEMPLATE.astype(np.float64)
    face = a * 3 + 100                                  # a face; its 112 frame spans 336 px from (100, 100)
    misfit = a * 2.4 + 160                              # the same face, fitted smaller and off
    below = a * 3 + [100.0, 100.0 + 3 * 38.4]           # as large, eyes at frame y 90: under its upper face
    group = np.stack([a + [110, 130], a + [300, 130]])  # two small faces in its frame, upper corners
    logo = np.stack([a * 0.4 + [180, 200], a * 0.3 + [190, 205]])  # two tiny "faces" close together
    outside = a + [600, 600]
    assert face_sizes(misfit[None])[0] >= 0.5 * face_sizes(face[None])[0]
    assert holds_faces(face[None], misfit[None]).tolist() == [True]
    assert holds_faces(face[None], below[None], [0.5], [0.99]).tolist() == [False]  # larger, more probable: position
    assert holds_faces(face[None], group).tolist() == [True]
    assert holds_faces(face[None], group[:1]).tolist() == [False]  # one small face in its upper face: a part
    assert holds_faces(face[None], logo).tolist() == [False]
    assert holds_faces(face[None], outside[None]).tolist() == [False]
    assert holds_faces(face[None], np.stack([below, outside]), [0.5], [0.99, 0.99]).tolist() == [False]
    assert holds_faces(np.stack([face, outside]), misfit[None]).tolist() == [True, False]
    # with probabilities: a small face in its upper face, at least as probable as the guess, is what it was made of
    assert holds_faces(face[None], group[:1], [0.95], [0.99]).tolist() == [True]
    assert holds_faces(face[None], group[:1], [0.999], [0.8]).tolist() == [False]


def _front_end_with(boxes_result, whole_result, pick):
    """A G2DFrontEnd whose detector and centre-guess steps return the given faces (no dlib, no network)."""
    fe = G2DFrontEnd.__new__(G2DFrontEnd)
    fe.pick, fe.min_score, fe.threshold, fe.fallback_threshold = pick, 0.5, -0.6, -1.0
    fe._from_boxes = lambda img, threshold=None: boxes_result
    fe._whole_photo = lambda img: whole_result
    return fe


@pytest.mark.parametrize("case", ["group", "misfit", "face below", "eye", "sure face", "unsure face",
                                  "no detector face"])
def test_find_prefers_detector_faces_over_centre_guesses_that_hold_them(case):
    a = ARCFACE_TEMPLATE.astype(np.float64)
    img = np.zeros((1000, 1000, 3), np.uint8)
    big = (a - 56) * 12 + 500                         # a centre guess spanning the photo
    if case == "group":     # four people; the centre guess spans them all and is the largest "face"
        dets = np.stack([a + [200, 200], a + [700, 200], a + [200, 700], a + [700, 700]])
        want = "hog"
    elif case == "misfit":  # a turned head: the centre guess fits it larger and off
        dets = (a * 6)[None] + [150, 150]
        big = dets[0] * 1.3 - [60, 20]
        want = "hog"
    elif case == "face below":  # a false small face under the mouth of the real, photo-filling face
        dets = a[None] * 0.8 + [460.0, 830.0 - 51.6 * 0.8]  # eyes at y 830: 84 in the guess's frame
        want = "whole photo"
    elif case == "eye":  # a tight crop of one face: a detector saw a tiny face in its eye
        dets = a[None] * 0.5 + [(a[0, 0] - 56) * 12 + 500 - 28, (a[0, 1] - 56) * 12 + 500 - 26]
        want = "whole photo"
    elif case in ("sure face", "unsure face"):  # large enough not to need the centre guess, unless unsure
        dets = a[None] * 5 + [300.0, 250.0]
        want = "hog" if case == "sure face" else "whole photo"
    else:
        dets = np.zeros((0, 5, 2))
        want = "whole photo"
    n = len(dets)
    boxes = np.array([[0.0, 0.0, 10.0, 10.0]] * n).reshape(-1, 4)
    det_prob = {"unsure face": 0.7, "face below": 0.9999}.get(case, 0.99)  # face below: more probable than the guess
    boxes_result = (boxes, ["hog"] * n, np.arange(n), dets, np.full(n, det_prob))
    whole_result = (np.array([0.0, 0.0, 1000.0, 1000.0]), big[None], np.array([0.999]))
    f = _front_end_with(boxes_result, whole_result, "largest")._find(img)
    assert f.outcome == "found" and f.source == want
    if want == "hog":
        assert any(np.allclose(f.landmarks, d, atol=1e-4) for d in dets) and f.faces == n
    else:
        np.testing.assert_allclose(f.landmarks, big, atol=1e-4)


def test_epoch_order_draws_turned_heads_in_proportion():
    lmk = np.stack([ARCFACE_TEMPLATE.astype(np.float64)] * 3)
    lmk[1, 2, 0] += 0.25 * TEMPLATE_IOD                    # nose off the eye midline by a quarter eye distance
    lmk[2, 2, 0] -= 0.5 * TEMPLATE_IOD
    yaw = yaw_of(lmk)
    offset = abs(ARCFACE_TEMPLATE[2, 0] - ARCFACE_TEMPLATE[:2, 0].mean()) / TEMPLATE_IOD  # the template's own
    np.testing.assert_allclose(yaw, [offset, offset + 0.25, 0.5 - offset], atol=1e-6)
    assert sorted(epoch_order(np.random.default_rng(0), yaw, 0.0).tolist()) == [0, 1, 2]
    draws = np.concatenate([epoch_order(np.random.default_rng([0, k]), yaw, 8.0) for k in range(4000)])
    expect = (1 + 8 * yaw) / (1 + 8 * yaw).sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / len(draws), expect, atol=0.01)


def test_a_face_fitted_twice_once_off_is_merged_but_neighbours_are_not():
    a = ARCFACE_TEMPLATE.astype(np.float64)
    face = a * 2 + 100
    iod = 2 * TEMPLATE_IOD
    misfit = a * 2.8 + 100                              # larger, its eye midpoint 0.87 eye distances off
    mids = [f[:2].mean(0) for f in (face, misfit)]
    assert 0.5 * iod < np.linalg.norm(mids[1] - mids[0]) < iod
    assert merge_faces(np.stack([face, misfit]), np.array([0.9, 0.99])).tolist() == [1]
    neighbour = face + [2.5 * iod, 0.0]                 # cheek to cheek in a group photo
    assert merge_faces(np.stack([face, neighbour]), np.array([0.9, 0.99])).tolist() == [1, 0]


def test_training_batches_put_targets_on_the_face_and_swap_flipped_points():
    class Photos:  # one photo: a grey face with a coloured dot at each landmark
        lmk = LMK[None]

        def __len__(self):
            return 1

        def photo(self, i):
            img = np.full((300, 320, 3), 128, np.uint8)
            for k, (x, y) in enumerate(LMK):
                cv2.circle(img, (int(round(x)), int(round(y))), 5, [(255, 0, 0), (0, 255, 0), (0, 0, 255),
                                                                      (255, 255, 0), (0, 255, 255)][k], -1)
            return img

    rng = np.random.default_rng(3)
    flipped_seen = plain_seen = 0
    for _ in range(12):
        views, points, labels = make_batch(Photos(), [0], rng, None, 0.0, 0.0, 0.0, {}, {})
        assert labels.tolist() == [1.0]
        v, p = views[0].astype(int), points[0]
        colours = np.array([v[int(round(y)), int(round(x))] for x, y in p])
        # left eye first in image order: after a flip the point that was the right eye (green) comes first
        hue = np.argmax(colours[:2], axis=1)
        if hue.tolist() == [0, 1]:
            plain_seen += 1
        elif hue.tolist() == [1, 0]:
            flipped_seen += 1
        assert (p[0, 0] < p[1, 0]) and (p[3, 0] < p[4, 0])  # left stays left after SWAP
    assert plain_seen and flipped_seen and plain_seen + flipped_seen == 12
    assert SWAP == [1, 0, 2, 4, 3]


class _Stub(FaceFinder):
    """Finds LMK in photos whose top-left pixel is white."""

    name = "stub"

    def _find(self, img):
        if img[0, 0, 0] == 255:
            return Finding(LMK.astype(np.float32), 0.9, 2, (60.0, 30.0, 200.0, 170.0), "stub", outcome="found")
        return Finding(reason="no face found by the stub")


def test_finder_specs_and_errors():
    assert finders.finder_spec()[0:2] == ("g2d", None)
    name, value, opts = finders.finder_spec("g2d:some/folder", upsample=2)
    assert name == "g2d" and value.endswith("some/folder") and opts["upsample"] == 2
    assert finders.finder_spec("dlib", cnn_fallback=True)[2]["cnn_fallback"] is True
    assert finders.finder_spec("det_10g.onnx")[0] == "scrfd"
    with pytest.raises(DataError, match="unknown detector 'hog'.*g2d"):
        finders.finder_spec("hog")
    assert "--cnn-fallback" in finders.miss_hint(finders.finder_spec("dlib"))
    assert finders.miss_hint(finders.finder_spec("dlib", cnn_fallback=True)).startswith("the default --detector g2d")


def test_align_report_says_what_happened_to_every_photo(tmp_path, monkeypatch):
    monkeypatch.setitem(finders.FACE_FINDERS, "g2d", finders.FinderType(lambda v, o: _Stub(), lambda o: "try more"))
    src = tmp_path / "photos"
    photo = cv2.warpAffine(np.full((112, 112, 3), 200, np.uint8), WARP, (320, 300))
    face = photo.copy()
    face[0, 0] = 255
    for rel, img in (("a/with_face.png", face), ("a/no_face.png", photo), ("b/tiny.png", face[:24, :24])):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(src / rel), img)
    (src / "b" / "broken.png").write_bytes(b"not an image")
    s = align_folder(src, tmp_path / "out", progress=False, fmt="png")  # no landmarks, no detector: g2d
    assert (s["photos"], s["aligned"], s["no_face"], s["too_small"], s["unreadable"]) == (4, 1, 1, 1, 1)
    assert s["hint"] == "try more"
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == \
        ["a/with_face.png"]  # photos without a face are never written
    rows = {r["path"]: r for r in read_align_report(s["report"])}
    assert list(rows) == ["a/no_face.png", "a/with_face.png", "b/broken.png", "b/tiny.png"]
    r = rows["a/with_face.png"]
    assert (r["outcome"], r["score"], r["faces"], r["box"], r["source"]) == ("aligned", "0.900", "2", "60,30,200,170",
                                                                               "stub")
    assert rows["a/no_face.png"]["outcome"] == "no face" and "stub" in rows["a/no_face.png"]["reason"]
    assert rows["b/tiny.png"]["outcome"] == "too small" and "24x24" in rows["b/tiny.png"]["reason"]
    assert rows["b/broken.png"]["outcome"] == "unreadable"
    got = cv2.imread(str(tmp_path / "out" / "a" / "with_face.png"))
    np.testing.assert_array_equal(got[1:-1, 1:-1], np.full((110, 110, 3), 200, np.uint8))
    s2 = align_folder(src, tmp_path / "out", progress=False, fmt="png")
    assert (s2["aligned"], s2["done_before"]) == (0, 1)
    assert {r["path"]: r["outcome"] for r in read_align_report(s2["report"])}["a/with_face.png"] == "done before"


def test_align_summary_names_the_hint_and_small_photos(tmp_path, monkeypatch, capsys):
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.data import main

    monkeypatch.setitem(finders.FACE_FINDERS, "dlib", finders.FinderType(
        lambda v, o: _Stub(), finders.FACE_FINDERS["dlib"].miss_hint))
    src = tmp_path / "photos" / "a"
    src.mkdir(parents=True)
    cv2.imwrite(str(src / "blank.png"), np.zeros((64, 64, 3), np.uint8))
    cv2.imwrite(str(src / "tiny.png"), np.zeros((24, 24, 3), np.uint8))
    assert run_cli(main, ["align", "--src", str(tmp_path / "photos"), "--out", str(tmp_path / "o"),
                          "--detector", "dlib", "--quiet", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "0 faces aligned" in out and "1 without a face found" in out and "1 too small to hold a face" in out
    assert "--cnn-fallback" in out and "24x24 px, too small" in out


# ------------------------------------------------------------------------------------ real faces
def _shipped_front_end():
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    return finders.build_finder(finders.finder_spec("g2d", pick="center"))


@pytest.mark.parametrize("style", ["clean", "surgical", "n95", "patterned"])
def test_shipped_front_end_finds_masked_lfw_faces(lfw_root, style, one_torch_thread):
    from insightface_g2d.data.align import read_landmarks_tsv
    from insightface_g2d.data.image_io import read_image_file
    from insightface_g2d.masks.synthesizer import MaskSynthesizer, rng_for

    front = _shipped_front_end()
    table = read_landmarks_tsv(lfw_root / "landmarks5.tsv")
    people = [ln.split("\t")[0] for ln in (lfw_root / "peopleDevTest.txt").read_text().splitlines()[1:9]]
    keys = [k for k in sorted(table) if k.split("/")[0] in people][:8]
    synth = MaskSynthesizer()
    errors = []
    for key in keys:
        img = read_image_file(lfw_root / "lfw-deepfunneled" / key)
        true = table[key].astype(np.float64)
        if style != "clean":
            img = synth.apply_landmarks(img, true, rng_for(0, key), style=style)[0]
        f = front.find(img)
        assert f.outcome == "found" and f.score >= 0.5 and f.faces >= 1, key
        iod = np.linalg.norm(true[1] - true[0])
        errors.append(np.linalg.norm(f.landmarks - true, axis=1).mean() / iod)
    assert np.median(errors) < 0.12 and max(errors) < 0.3  # 150 DevTest photos: median 0.05 clean, 0.07 masked


def test_train_landmarks_command_on_a_few_lfw_photos(lfw_root, tmp_path, capsys, one_torch_thread):
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.data import main
    from insightface_g2d.faces.landmark_net import read_config

    out = tmp_path / "fe"
    assert run_cli(main, ["train-landmarks", "--src", str(lfw_root / "lfw-deepfunneled"), "--landmarks",
                          str(lfw_root / "landmarks5.tsv"), "--include", str(lfw_root / "peopleDevTrain.txt"),
                          "--out", str(out), "--limit", "24", "--hog-photos", "20", "--mine-photos", "10",
                          "--epochs", "1", "--batch-size", "16", "--quiet"]) == 0
    assert "g2d:" in capsys.readouterr().out
    config = read_config(out)
    assert config["landmarks"]["photos"] == 24 and config["landmarks"]["styles"] == ["surgical", "kn95", "cloth",
                                                                                       "patterned"]
    assert config["masked_hog"]["file"] == "masked_hog.svm" and (out / "masked_hog.svm").is_file()
    front = finders.build_finder(finders.finder_spec(f"g2d:{out}"))
    assert isinstance(front.find(np.zeros((120, 120, 3), np.uint8)), Finding)


def test_large_faces_are_shrunk_first_and_land_on_the_template():
    big = np.array([[8.0, 0.0, 100.0], [0.0, 8.0, 50.0]])  # a face 8x the aligned frame: views shrink ~11x
    lmk = transform_points(ARCFACE_TEMPLATE, big)
    img = np.full((1100, 1100, 3), 100, np.uint8)
    for x, y in lmk:
        cv2.circle(img, (int(round(x)), int(round(y))), 12, (255, 255, 255), -1)
    views, _ = crop_views(img, frames_from_landmarks(lmk[None]))
    glow = np.clip(views[0, :, :, 0].astype(float) - 100.0, 0, None)
    ys, xs = np.mgrid[:INPUT, :INPUT]
    for x, y in template_in_view():  # each dot's brightness-weighted centroid within 0.3 px of its point
        w = glow * (np.hypot(xs - x, ys - y) < 4)
        assert w.sum() > 0
        assert abs((w * xs).sum() / w.sum() - x) < 0.3 and abs((w * ys).sum() / w.sum() - y) < 0.3
    # averaged, not aliased: the 24-px dots shrink to soft blobs whose peak stays bright
    assert views[0, :, :, 0].max() > 200 and len(np.unique(views[0, :, :, 0])) > 20


@pytest.mark.parametrize("option, value, words", [("--hidden", "0", "at least 1 unit"),
                                                  ("--yaw-weight", "-1", "use 0"),
                                                  ("--widths", "8,8,8", "give 4 channel counts"),
                                                  ("--widths", "8,0,8,8", "at least 1")])
def test_train_landmarks_refuses_bad_settings_before_any_work(tmp_path, capsys, option, value, words):
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.data import main

    rc = run_cli(main, ["train-landmarks", "--src", str(tmp_path / "none"), "--landmarks", str(tmp_path / "x.tsv"),
                        "--out", str(tmp_path / "fe"), option, value, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fe").exists()


def test_train_landmarks_widths_must_be_whole_numbers(tmp_path, capsys):
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.data import main

    with pytest.raises(SystemExit) as stop:  # argparse's usage error
        run_cli(main, ["train-landmarks", "--src", str(tmp_path), "--landmarks", str(tmp_path / "x.tsv"),
                       "--out", str(tmp_path / "fe"), "--widths", "8,x,8,8"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "'8,x,8,8' is not a comma-separated list of whole numbers (example: 24,48,96,192)" in err
    assert not (tmp_path / "fe").exists()

"""`g2d-data`: align photos, pack RecordIO (read back by mxnet), a .bin from a pairs list, landmark agreement."""

import cv2
import numpy as np
import pytest

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.data import build_parser, main
from insightface_g2d.data.align import ARCFACE_TEMPLATE, align_face, transform_points
from insightface_g2d.data.folder import ImageFolderFaces
from insightface_g2d.data.pack import pack_folder
from insightface_g2d.faces.align_folder import align_folder
from insightface_g2d.faces.photo_folders import list_photos, read_identity_list
from insightface_g2d.data.recordio_dataset import RecordIOFaces
from insightface_g2d.errors import DataError

# aligned 112x112 crop -> 240x240 "photo": scale 1.5, rotation ~9.5 degrees, shifted
WARP = np.array([[1.48, -0.25, 40.0], [0.25, 1.48, 25.0]])


def _face(seed):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (112, 112), interpolation=cv2.INTER_CUBIC)


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture()
def photos(tmp_path):
    """src/<identity>/*.png unaligned 240x240 photos of known faces, and their landmarks TSV.

    Identities ann (3 photos), bob (2), cy (1, without landmarks). Returns (src, tsv, faces by rel path).
    """
    src = tmp_path / "photos"
    lmk = transform_points(ARCFACE_TEMPLATE, WARP)
    lines = ["path\tx1\ty1\tx2\ty2\tx3\ty3\tx4\ty4\tx5\ty5\tsource"]
    faces = {}
    for k, rel in enumerate(["ann/ann_1.png", "ann/ann_2.png", "ann/ann_3.png", "bob/bob_1.png", "bob/bob_2.png",
                             "cy/cy_1.png"]):
        faces[rel] = _face(k)
        _write(src / rel, cv2.warpAffine(faces[rel], WARP, (240, 240), flags=cv2.INTER_CUBIC))
        if not rel.startswith("cy/"):
            lines.append(rel + "\t" + "\t".join(f"{v:.4f}" for v in lmk.ravel()) + "\thog")
    tsv = tmp_path / "lmk.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    return src, tsv, faces


def test_identity_lists_lfw_and_plain(tmp_path):
    lfw = tmp_path / "peopleDevTrain.txt"
    lfw.write_text("3\nAJ_Cook\t1\nAaron_Eckhart\t1\nAbdullah_Gul\t14\n")
    assert read_identity_list(lfw) == ["AJ_Cook", "Aaron_Eckhart", "Abdullah_Gul"]
    folds = tmp_path / "people.txt"  # LFW View 2: fold count, then per fold a count and its people
    folds.write_text("2\n2\nA\t1\nB\t3\n1\nC\t2\n")
    assert read_identity_list(folds) == ["A", "B", "C"]
    plain = tmp_path / "names.txt"
    plain.write_text("# people to keep\nMary Ann\n\nbob\nbob\n")
    assert read_identity_list(plain) == ["Mary Ann", "bob"]
    (tmp_path / "empty.txt").write_text("12\n")
    with pytest.raises(DataError, match="names no identity"):
        read_identity_list(tmp_path / "empty.txt")


def test_align_with_landmarks_recovers_the_faces(photos, tmp_path):
    src, tsv, faces = photos
    out = tmp_path / "aligned"
    s = align_folder(src, out, landmarks=tsv, progress=False, fmt="png")
    assert (s["photos"], s["aligned"], s["done_before"], s["failed"]) == (6, 5, 0, 1)
    assert s["failures"][0][0] == "cy/cy_1.png" and "no landmarks" in s["failures"][0][1]
    from insightface_g2d.faces.align_folder import read_align_report

    report = {r["path"]: r for r in read_align_report(out / "align_report.tsv")}  # one row per photo
    assert sorted(report) == sorted(faces) and report["cy/cy_1.png"]["outcome"] == "no landmarks"
    assert {r["outcome"] for p, r in report.items() if p != "cy/cy_1.png"} == {"aligned"}
    assert {r["source"] for p, r in report.items() if p != "cy/cy_1.png"} == {"landmarks file"}
    for rel, face in faces.items():
        if rel.startswith("cy/"):
            assert not (out / "cy").exists()
            continue
        got = cv2.cvtColor(cv2.imread(str(out / rel)), cv2.COLOR_BGR2RGB)
        # the photo was the face warped by WARP: aligning inverts it (interpolation error only, away from the border)
        diff = np.abs(got[8:-8, 8:-8].astype(int) - face[8:-8, 8:-8].astype(int))
        assert diff.mean() < 3.0, rel
        np.testing.assert_array_equal(got, align_face(cv2.cvtColor(cv2.imread(str(src / rel)), cv2.COLOR_BGR2RGB),
                                                      transform_points(ARCFACE_TEMPLATE, WARP)))
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left
    ds = ImageFolderFaces(out)
    assert len(ds) == 5 and ds.classes == ["ann", "bob"] and ds[0][0].shape == (112, 112, 3)
    # a re-run writes nothing new: every face is already there
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    s2 = align_folder(src, out, landmarks=tsv, progress=False, fmt="png")
    assert (s2["aligned"], s2["done_before"], s2["failed"]) == (0, 5, 1)
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}


def test_align_include_exclude_and_workers(photos, tmp_path):
    src, tsv, _ = photos
    inc = tmp_path / "inc.txt"
    inc.write_text("2\nann\t3\ncy\t1\n")
    exc = tmp_path / "exc.txt"
    exc.write_text("cy\n")
    s = align_folder(src, tmp_path / "o1", landmarks=tsv, include=inc, exclude=exc, workers=2, progress=False)
    assert (s["photos"], s["aligned"], s["failed"]) == (3, 3, 0)
    assert sorted(p.relative_to(tmp_path / "o1").as_posix() for p in (tmp_path / "o1").rglob("*.jpg")) == [
        "ann/ann_1.jpg", "ann/ann_2.jpg", "ann/ann_3.jpg"]
    (tmp_path / "bad.txt").write_text("ann\nzed\n")
    with pytest.raises(DataError, match="1 of 2 identities of the include list.*zed"):
        list_photos(src, read_identity_list(tmp_path / "bad.txt"))


def test_pack_is_arcface_layout_and_mxnet_reads_it_back(photos, tmp_path):
    mx = pytest.importorskip("mxnet")
    src, tsv, _ = photos
    aligned = tmp_path / "aligned"
    align_folder(src, aligned, landmarks=tsv, progress=False)
    s = pack_folder(aligned, tmp_path / "rec", progress=False)
    assert (s["images"], s["identities"]) == (5, 2)
    assert (tmp_path / "rec" / "property").read_text() == "2,112,112\n"
    folder = ImageFolderFaces(aligned)
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "rec" / "train.idx"), str(tmp_path / "rec" / "train.rec"), "r")
    assert sorted(rec.keys) == list(range(8))  # header, 5 images, 2 identities
    h0, payload = mx.recordio.unpack(rec.read_idx(0))
    assert h0.flag == 2 and h0.label.tolist() == [6.0, 8.0] and payload == b""
    for key in range(1, 6):  # images: label = class id, the file's bytes unchanged
        h, payload = mx.recordio.unpack(rec.read_idx(key))
        rel, label = folder.items[key - 1]
        assert h.flag == 0 and h.label == label and h.id == key
        assert payload == (aligned / rel).read_bytes()
    assert [mx.recordio.unpack(rec.read_idx(k))[0].label.tolist() for k in (6, 7)] == [[1.0, 4.0], [4.0, 6.0]]
    # arcface_torch's MXFaceDataset: header -> imgidx = 1 .. label[0]-1, then unpack_img (BGR) per key
    imgidx = np.array(range(1, int(h0.label[0])))
    ours = RecordIOFaces(tmp_path / "rec")
    assert ours.layout == "arcface" and ours.keys.tolist() == imgidx.tolist() and ours.num_classes == 2
    for i, key in enumerate(imgidx):
        h, bgr = mx.recordio.unpack_img(rec.read_idx(int(key)))
        img, label = ours[i]
        np.testing.assert_array_equal(img, bgr[..., ::-1])
        np.testing.assert_array_equal(img, folder[i][0])
        assert label == int(h.label) == folder[i][1]
    with pytest.raises(DataError, match="exists; pass --force"):
        pack_folder(aligned, tmp_path / "rec", progress=False)
    pack_folder(aligned, tmp_path / "rec", progress=False, force=True)


def test_pack_refuses_unaligned_faces(photos, tmp_path):
    src, _, _ = photos
    with pytest.raises(DataError, match=r"240x240, not an aligned 112x112 face: align the photos first"):
        pack_folder(src, tmp_path / "rec", progress=False)
    assert not (tmp_path / "rec" / "train.rec").exists() and not (tmp_path / "rec" / "train.idx").exists()


def test_cli_align_pack_bin_and_errors(photos, tmp_path, capsys):
    from insightface_g2d.evaluation.binfile import load_bin

    src, tsv, _ = photos
    out = tmp_path / "faces"
    assert run_cli(main, ["align", "--src", str(src), "--landmarks", str(tsv), "--out", str(out), "--quiet"]) == 0
    assert "5 faces aligned, 0 already there, 1 without landmarks in the file of 6 photos" in capsys.readouterr().out
    assert run_cli(main, ["pack", "--src", str(out), "--out", str(tmp_path / "r" / "x.rec"), "--quiet"]) == 0
    assert (tmp_path / "r" / "x.idx").is_file() and len(RecordIOFaces(tmp_path / "r" / "x.rec")) == 5
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("ann/ann_1.png\tann/ann_2.png\t1\nann/ann_3.png\tbob/bob_1.png\t0\n")
    assert run_cli(main, ["bin", "--root", str(src), "--pairs", str(pairs), "--landmarks", str(tsv),
                          "--out", str(tmp_path / "p.bin"), "--quiet"]) == 0
    images, issame = load_bin(tmp_path / "p.bin")
    assert issame.tolist() == [True, False] and images.shape == (4, 112, 112, 3)
    aligned = cv2.cvtColor(cv2.imread(str(out / "ann" / "ann_3.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(images[2].astype(int) - aligned.astype(int)).mean() < 2.0  # both JPEG q95 of the same face
    capsys.readouterr()
    # unaligned photos without landmarks: refused, not silently resized
    assert run_cli(main, ["bin", "--root", str(src), "--pairs", str(pairs), "--out", str(tmp_path / "q.bin"),
                          "--quiet"]) == 2
    assert "240x240, not an aligned 112x112 face" in capsys.readouterr().err
    assert run_cli(main, ["align", "--src", str(src), "--detector", "nothing", "--out", str(tmp_path / "o")]) == 2
    assert "unknown detector 'nothing'" in capsys.readouterr().err
    assert run_cli(main, ["align", "--src", str(src), "--detector", str(tmp_path / "det_10g.onnx"),
                          "--out", str(tmp_path / "o")]) == 2
    assert "det_10g.onnx not found" in capsys.readouterr().err


def test_every_subcommand_help_has_an_example(capsys):
    parser = build_parser()
    names = parser._subparsers._group_actions[0].choices
    assert set(names) == {"align", "pack", "bin", "check-landmarks", "train-landmarks"}
    for name in names:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert f"usage: g2d-data {name}" in text and f"example:\n  g2d-data {name} " in text


# ------------------------------------------------------------------------------ real faces (LFW)

def test_lfw_align_usage_of_the_lfw_recipe(lfw_root, tmp_path):
    """The exact command the LFW recipe runs, on three DevTrain people."""
    people = (lfw_root / "peopleDevTrain.txt").read_text().splitlines()[1:4]
    inc = tmp_path / "inc.txt"
    inc.write_text("3\n" + "\n".join(people) + "\n")
    out = tmp_path / "lfw112"
    assert run_cli(main, ["align", "--src", str(lfw_root / "lfw-deepfunneled"), "--landmarks",
                          str(lfw_root / "landmarks5.tsv"), "--include", str(inc), "--out", str(out), "--quiet"]) == 0
    ds = ImageFolderFaces(out)
    names = [p.split("\t")[0] for p in people]
    counts = [int(p.split("\t")[1]) for p in people]
    assert ds.classes == sorted(names) and len(ds) == sum(counts)
    rel, _ = ds.items[0]
    photo = cv2.cvtColor(cv2.imread(str(lfw_root / "lfw-deepfunneled" / rel)), cv2.COLOR_BGR2RGB)
    from insightface_g2d.data.align import read_landmarks_tsv

    expect = align_face(photo, read_landmarks_tsv(lfw_root / "landmarks5.tsv")[rel])
    assert np.abs(ds[0][0].astype(int) - expect.astype(int)).mean() < 2.0  # JPEG q95 of the same crop


def test_lfw_dlib_detector_agrees_with_landmarks5(lfw_root, tmp_path):
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from insightface_g2d.faces.align_folder import landmark_agreement

    r = landmark_agreement(lfw_root / "lfw-deepfunneled", lfw_root / "landmarks5.tsv", "dlib", sample=6, seed=1,
                           progress=False)
    assert r["sample"] == 6 and r["detected"] >= 5
    assert r["median"] < 0.05 and r["share_above_0_1"] <= 0.2
    # the detector path of align on one person: faces written, failures reported
    inc = tmp_path / "inc.txt"
    inc.write_text("Aaron_Eckhart\n")
    s = align_folder(lfw_root / "lfw-deepfunneled", tmp_path / "det", detector="dlib", include=inc, progress=False)
    assert s["aligned"] + s["failed"] == s["photos"] == 1 and s["aligned"] == 1


def test_eval_pairs_refuses_unaligned_photos(photos, tmp_path, capsys):
    from insightface_g2d.cli import evaluate

    src, tsv, _ = photos
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("ann/ann_1.png\tann/ann_2.png\t1\nann/ann_3.png\tbob/bob_1.png\t0\n")
    argv = ["pairs", "--model", "g2d_t:random", "--root", str(src), "--pairs", str(pairs), "--device", "cpu", "--quiet",
            "--nfolds", "2"]
    assert run_cli(evaluate.main, argv) == 2
    err = capsys.readouterr().err
    assert "240x240, not an aligned 112x112 face" in err and "--landmarks" in err and "g2d-data align" in err
    assert run_cli(evaluate.main, argv + ["--landmarks", str(tsv)]) == 0


def test_lfw_photos_to_rec_bin_train_and_compare_by_commands(lfw_root, tmp_path, capsys, one_torch_thread):
    """Done-when of issue 12 on real faces: LFW photos -> RecordIO + .bin of held-out pairs -> g2d-train ->
    g2d-eval compare, by commands alone (a few people, a few steps)."""
    from insightface_g2d.cli import evaluate, train
    from insightface_g2d.evaluation.binfile import load_bin

    lfw, out = lfw_root, tmp_path
    train_people = [ln for ln in (lfw / "peopleDevTrain.txt").read_text().splitlines()[1:] if not ln.endswith("\t1")][:4]
    (out / "train.txt").write_text("\n".join(train_people) + "\n")
    # held-out pairs: the first 4 matched and 4 mismatched DevTest pairs (people disjoint from DevTrain)
    lines = (lfw / "pairsDevTest.txt").read_text().splitlines()
    (out / "pairs.txt").write_text("4\n" + "\n".join(lines[1:5] + lines[501:505]) + "\n")
    assert run_cli(main, ["align", "--src", str(lfw / "lfw-deepfunneled"), "--landmarks", str(lfw / "landmarks5.tsv"),
                          "--include", str(out / "train.txt"), "--out", str(out / "faces"), "--quiet"]) == 0
    assert run_cli(main, ["pack", "--src", str(out / "faces"), "--out", str(out / "rec"), "--quiet"]) == 0
    assert run_cli(main, ["bin", "--root", str(lfw / "lfw-deepfunneled"), "--pairs", str(out / "pairs.txt"),
                          "--landmarks", str(lfw / "landmarks5.tsv"), "--out", str(out / "heldout.bin"), "--quiet"]) == 0
    images, issame = load_bin(out / "heldout.bin")
    assert images.shape == (16, 112, 112, 3) and issame.tolist() == [True] * 4 + [False] * 4
    rec = RecordIOFaces(out / "rec")
    assert rec.num_classes == 4 and len(rec) == sum(int(p.split("\t")[1]) for p in train_people)
    job = out / "job.py"
    job.write_text(f"""from easydict import EasyDict as edict
config = edict()
config.network = "g2d_t"
config.embedding_size = 32
config.rec = "{out / 'rec'}"
config.batch_size = 8
config.num_workers = 0
config.teacher = dict(stage="baseline")
config.stages = [
    dict(name="baseline", kind="arcface", network="g2d_t", steps=2, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="inpaint", steps=1, batch_size=4, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8)),
    dict(name="reform", steps=2),
    dict(name="classify", steps=1),
]
config.eval = dict(enabled=True, pairs="{out / 'heldout.bin'}", nfolds=2, protocols=("clean", "masked-clean"))
""")
    assert run_cli(train.main, [str(job), "--output", str(out / "run"), "--device", "cpu"]) == 0
    assert json_load(out / "run" / "eval.json")["num_pairs"] == 8
    assert run_cli(evaluate.main, ["compare", "--model", f"G2D=g2d_t:{out / 'run' / 'model.pt'}",
                                   "--model", f"baseline=g2d_t:{out / 'run' / 'baseline_model.pt'}",
                                   "--target", f"devtest={out / 'heldout.bin'}", "--nfolds", "2",
                                   "--device", "cpu", "--out", str(out / "compare")]) == 0
    doc = json_load(out / "compare" / "compare.json")
    assert {m["label"] for m in doc["models"]} == {"G2D", "baseline"}
    assert (out / "compare" / "roc_devtest.png").is_file()


def json_load(path):
    import json

    return json.loads(path.read_text())


def _fake_scrfd(path, size=640):
    """An ONNX graph insightface's model_zoo takes for SCRFD (9 outputs: scores, boxes, key points at
    strides 8/16/32, 2 anchors each) that 'detects' one face: the anchor at (320, 320) of stride 32."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    kps_offsets = np.array([-0.8, -0.5, 0.8, -0.5, 0.0, 0.1, -0.6, 0.8, 0.6, 0.8], np.float32)
    nodes, outputs = [], []
    for kind, width in enumerate((1, 4, 10)):
        for stride in (8, 16, 32):
            arr = np.zeros(((size // stride) ** 2 * 2, width), np.float32)
            if stride == 32:
                k = ((320 // 32) * (size // 32) + 320 // 32) * 2
                arr[k] = (0.9,) if kind == 0 else (2.0, 2.0, 2.0, 2.0) if kind == 1 else kps_offsets
            name = f"out{kind}_{stride}"
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name + "_value")))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(nodes, "fake_scrfd", [helper.make_tensor_value_info(
        "input.1", TensorProto.FLOAT, [1, 3, size, size])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return 320.0 + 32.0 * kps_offsets.reshape(5, 2)  # SCRFD's decoding: anchor centre + offset x stride


def test_scrfd_onnx_detector_path(tmp_path):
    from insightface_g2d.faces.scrfd_landmarks import ScrfdLandmarker

    expect = _fake_scrfd(tmp_path / "det_fake.onnx")
    det = ScrfdLandmarker(tmp_path / "det_fake.onnx")
    lmk, source = det(np.zeros((640, 640, 3), np.uint8))
    assert source == "scrfd"
    np.testing.assert_allclose(lmk, expect, atol=1e-4)
    lmk_half, _ = det(np.zeros((320, 320, 3), np.uint8))  # the photo is scaled to the detector's input
    np.testing.assert_allclose(lmk_half, expect / 2, atol=1e-4)
    src = tmp_path / "photos"
    photo = cv2.resize(_face(3), (640, 640), interpolation=cv2.INTER_CUBIC)
    _write(src / "p" / "one.png", photo)
    s = align_folder(src, tmp_path / "out", detector=str(tmp_path / "det_fake.onnx"), fmt="png", progress=False)
    assert (s["aligned"], s["failed"]) == (1, 0)
    got = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "p" / "one.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(got, align_face(photo, expect))
    (tmp_path / "not_a_model.onnx").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot load detector"):
        ScrfdLandmarker(tmp_path / "not_a_model.onnx")


def test_dlib_absent_names_the_extra(photos, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    src, _, _ = photos
    assert run_cli(main, ["align", "--src", str(src), "--detector", "dlib", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "needs dlib, which is not installed" in err and "pip install -e .[dlib]" in err
    assert not (tmp_path / "o").exists()


def test_five_points_from_68():
    from insightface_g2d.faces.dlib_landmarks import five_from_68, pick_face

    pts = np.zeros((68, 2))
    pts[36:42] = [60, 40] + np.arange(6)[:, None]     # image-left eye: mean (62.5, 42.5)
    pts[42:48] = [30, 44]                             # image-right eye in dlib's numbering, but smaller x
    pts[30], pts[48], pts[54] = [50, 60], [70, 80], [35, 81]
    np.testing.assert_allclose(five_from_68(pts), [[30, 44], [62.5, 42.5], [50, 60], [35, 81], [70, 80]])
    boxes = [[0, 0, 10, 10], [40, 40, 60, 60], [70, 0, 100, 40]]
    assert pick_face(boxes, (100, 100), "largest") == 2 and pick_face(boxes, (100, 100), "center") == 1
    assert pick_face(np.zeros((0, 4)), (100, 100)) is None

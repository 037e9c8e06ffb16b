"""FaceRecognizer on real photos (a few LFW photos, skipped when LFW is absent; the front end needs
the [dlib] extra): faces, inputs of every kind, masked, no-face and two-face photos, batches, search,
thresholds by name, and the same scores as `g2d-eval pairs` on the same photos."""
import shutil

import numpy as np
import pytest

pytest.importorskip("dlib")

from insightface_g2d.errors import ConfigError  # noqa: E402
from run_folders import write_tiny_run  # noqa: E402

PEOPLE = ("Colin_Powell", "Tony_Blair", "George_W_Bush")


@pytest.fixture(scope="module")
def photos(lfw_root, tmp_path_factory, one_torch_thread):
    """{name: path}: two photos of each of PEOPLE, one of them masked, copied into a tmp folder."""
    from insightface_g2d.data.image_io import read_photo, write_image
    from insightface_g2d.faces.landmarks import LandmarkIndex
    from insightface_g2d.masks.synthesizer import MaskSynthesizer, rng_for

    root = tmp_path_factory.mktemp("photos")
    src = lfw_root / "lfw-deepfunneled"
    index = LandmarkIndex(lfw_root / "landmarks5.tsv")
    synth = MaskSynthesizer(styles=["surgical"])
    out = {}
    for person in PEOPLE:
        (root / person).mkdir()
        for n in (1, 2):
            rel = f"{person}/{person}_{n:04d}.jpg"
            shutil.copy(src / rel, root / rel)
            out[f"{person}{n}"] = root / rel
        masked = synth.apply_landmarks(read_photo(src / rel), index.require(src / rel, src), rng_for(0, rel))[0]
        write_image(root / "masked" / f"{person}.png", masked)
        out[f"{person}_masked"] = root / "masked" / f"{person}.png"
    return out


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A g2d-train-like output folder: model.pt of a tiny g2d_t and the run_summary.json naming it."""
    return write_tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def rec(run_folder):
    from insightface_g2d import FaceRecognizer

    return FaceRecognizer(run_folder)


def test_faces_of_a_photo(rec, photos):
    faces = rec.faces(photos["Colin_Powell1"])
    assert len(faces) == 1 and faces.reason == ""
    face = faces[0]
    assert len(face.box) == 4 and face.landmarks.shape == (5, 2) and face.masked_score is None
    assert face.crop.shape == (112, 112, 3) and face.crop.dtype == np.uint8
    assert face.embedding.shape == (32,) and np.linalg.norm(face.embedding) == pytest.approx(1, abs=1e-5)
    assert 0.5 <= face.detection_score <= 1


def test_paths_arrays_bgr_and_pil_give_one_embedding(rec, photos):
    from PIL import Image

    from insightface_g2d.data.image_io import read_photo

    rgb = read_photo(photos["Tony_Blair1"])
    want = rec.embed(photos["Tony_Blair1"])
    for got in (rec.embed(str(photos["Tony_Blair1"])), rec.embed(rgb), rec.embed(rgb[:, :, ::-1].copy(), bgr=True),
                rec.embed(Image.fromarray(rgb))):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_masked_photo_is_found_and_verified(rec, photos):
    assert len(rec.faces(photos["Tony_Blair_masked"])) == 1
    result = rec.verify(photos["Tony_Blair_masked"], photos["Tony_Blair1"], threshold=0.0)
    assert -1 <= result.score <= 1 and result.units == "cosine" and result.threshold_name == "given 0"


def test_a_photo_without_a_face_is_a_result_not_an_error(rec, photos):
    blank = np.full((200, 200, 3), 128, np.uint8)
    faces = rec.faces(blank)
    assert len(faces) == 0 and "no face found" in faces.reason
    assert rec.embed(blank) is None
    result = rec.verify(blank, photos["Colin_Powell1"])
    assert result.score is None and result.same is False and "no face" in result.reason
    assert rec.search(blank, {"Colin_Powell": [photos["Colin_Powell1"]]}).identity == "unknown"
    missing = rec.faces("/nonexistent/photo.jpg")
    assert len(missing) == 0 and "file not found" in missing.reason


def test_two_faces_and_batches(rec, photos):
    from insightface_g2d.data.image_io import read_photo

    pair = np.concatenate([read_photo(photos["Colin_Powell1"]), read_photo(photos["Tony_Blair1"])], axis=1)
    faces = rec.faces(pair)
    assert len(faces) == 2
    xs = sorted(f.landmarks[:, 0].mean() for f in faces)
    assert xs[0] < 250 < xs[1]
    batch = rec.embed([photos["Colin_Powell1"], np.zeros((64, 64, 3), np.uint8)])
    assert batch[0].shape == (32,) and batch[1] is None
    assert [len(f) for f in rec.faces([photos["Colin_Powell1"], pair])] == [1, 2]


def test_search_ranks_identities_and_says_unknown_below_the_threshold(rec, photos):
    gallery, rows = rec.enroll({p: [photos[f"{p}1"], photos[f"{p}_masked"]] for p in PEOPLE})
    assert len(gallery.identities) == 3 and all(r[2] == "enrolled" for r in rows)
    probe = photos["George_W_Bush1"]  # enrolled: its own photo scores 1
    result = rec.search(probe, gallery, top_k=2, threshold=0.5)
    assert result.identity == "George_W_Bush" and result.score == pytest.approx(1, abs=1e-5)
    assert len(result.matches) == 2 and result.matches[0].score >= result.matches[1].score
    assert rec.search(photos["George_W_Bush2"], gallery, threshold=1.01).identity == "unknown"


def test_scores_equal_g2d_eval_pairs_and_thresholds_travel(rec, run_folder, photos, tmp_path):
    """The recognizer's verify score of two photos is the score g2d-eval pairs --detector g2d gives
    the pair (same crops, same flip); pairs' --write-thresholds file is then found beside model.pt."""
    from insightface_g2d import FaceRecognizer
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.evaluate import main

    root = photos["Colin_Powell1"].parents[1]
    pairs = [("Colin_Powell/Colin_Powell_0001.jpg", "Colin_Powell/Colin_Powell_0002.jpg", 1),
             ("Colin_Powell/Colin_Powell_0001.jpg", "masked/Tony_Blair.png", 0),
             ("Tony_Blair/Tony_Blair_0001.jpg", "masked/Tony_Blair.png", 1)]
    (tmp_path / "pairs.txt").write_text("".join(f"{a} {b} {s}\n" for a, b, s in pairs))
    scores, beside = tmp_path / "scores.tsv", run_folder / "model.thresholds.json"
    rc = run_cli(main, ["pairs", "--model", f"g2d_t:{run_folder / 'model.pt'}", "--root", str(root), "--pairs",
                        str(tmp_path / "pairs.txt"), "--detector", "g2d", "--quiet", "--scores", str(scores),
                        "--write-thresholds", str(beside), "--name", "mine"])
    assert rc == 0  # 3 pairs: leave-one-out folds, not "cannot split"
    rows = [line.split("\t") for line in scores.read_text().splitlines()[1:]]
    assert len(rows) == 3
    for (a, b, _), row in zip(pairs, rows):
        assert row[:2] == [a, b]
        assert float(row[4]) == pytest.approx(rec.verify(root / a, root / b, threshold=0.0).score, abs=1e-5)
    try:
        again = FaceRecognizer(run_folder)
        result = again.verify(root / pairs[0][0], root / pairs[0][1], threshold="best-accuracy")
        assert result.threshold_name.startswith("best-accuracy measured on mine clean (3 pairs)")
        assert "default" in rec.verify(root / pairs[0][0], root / pairs[0][1]).threshold_name
        with pytest.raises(ConfigError, match="no threshold 'far=1e-3'"):
            again.verify(root / pairs[0][0], root / pairs[0][1], threshold="far=1e-3")
    finally:
        beside.unlink()


def test_model_file_without_its_network_is_refused(tmp_path, run_folder):
    from insightface_g2d import FaceRecognizer

    shutil.copy(run_folder / "model.pt", tmp_path / "model.pt")
    with pytest.raises(ConfigError, match=r"give NETWORK:.*model\.pt"):
        FaceRecognizer(tmp_path / "model.pt")


def test_flip_follows_the_thresholds_file(run_folder, tmp_path):
    """Thresholds measured without the mirror image (g2d-lfw compare evaluates so) are applied to
    embeddings made the same way, unless flip is given."""
    from insightface_g2d import FaceRecognizer
    from insightface_g2d.evaluation import thresholds as th

    issame = np.arange(200) % 2 == 0
    doc = th.thresholds_document([th.measured_set(np.linspace(1, 0, 200), issame, "devtest", "clean", flip=False)])
    th.write_thresholds(tmp_path / "t.json", doc)
    assert FaceRecognizer(run_folder, thresholds=tmp_path / "t.json").flip is False
    assert FaceRecognizer(run_folder, thresholds=tmp_path / "t.json", flip=True).flip is True

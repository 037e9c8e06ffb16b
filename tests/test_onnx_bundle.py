"""Deployment bundles (`g2d-face export`, recognition/bundle.py, bundle_export.py): the model and the front end's
landmark network as ONNX, equal to the PyTorch path (parity <= 1e-4 on unit embeddings), run by
FaceRecognizer in a process where PyTorch cannot be imported, and refused in one line when a
file is damaged or the manifest is foreign."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib")
pytest.importorskip("onnxruntime")

from insightface_g2d.errors import ConfigError, DataError  # noqa: E402
from insightface_g2d.evaluation.verification import l2_normalize  # noqa: E402
from insightface_g2d.recognition.bundle import Bundle, BundleEmbedder, read_manifest  # noqa: E402
from insightface_g2d.recognition.bundle_export import export_bundle  # noqa: E402
from run_folders import write_tiny_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Runs in a fresh interpreter where `import torch` fails: what a machine without PyTorch sees.
NO_TORCH = """
import json, sys
class NoTorch:
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("PyTorch is not installed here")
sys.meta_path.insert(0, NoTorch())
import numpy as np
from insightface_g2d import FaceRecognizer
from insightface_g2d.faces.finders import build_finder, finder_spec
bundle, crops_file, tight_file, photos = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rec = FaceRecognizer(bundle)
out = {"crops": rec.embed_crops(np.load(crops_file)).tolist()}
finder = build_finder(finder_spec("g2d:" + bundle + "/front_end", assume_cropped=True))
out["tight"] = finder.find(np.load(tight_file)).landmarks.tolist()
out["photos"] = [None if e is None else e.tolist() for e in rec.embed(photos)] if photos else []
if len(photos) >= 2:
    out["score"] = rec.verify(photos[0], photos[1]).score
out["torch_imported"] = "torch" in sys.modules
print(json.dumps(out))
"""


def _run_without_torch(bundle, crops, tight, photos, tmp_path):
    np.save(tmp_path / "crops.npy", crops)
    np.save(tmp_path / "tight.npy", tight)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(bundle), str(tmp_path / "crops.npy"),
                           str(tmp_path / "tight.npy")] + [str(p) for p in photos],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _synthetic_faces(n, seed=0):
    from insightface_g2d.data.synthetic import SyntheticFaces

    faces = SyntheticFaces(num_identities=n, images_per_identity=1, seed=seed)
    return np.stack([np.asarray(faces[i][0]) for i in range(n)])


def _tight_photo(face):
    """A synthetic face as a photo that is one tight face crop (224 x 224)."""
    import cv2

    return cv2.resize(face, (224, 224), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A g2d-train-like run folder of a tiny random g2d_t (embeddings of [-1, 1] 112 crops)."""
    return write_tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def tiny_bundle(tiny_run, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    info = export_bundle(tiny_run, out)
    assert info["parity"]["embedding"] <= 1e-4
    return out


@pytest.fixture(scope="module")
def ready_bundle(tmp_path_factory, one_torch_thread):
    """The shipped masked-face model g2d_lfw (dlib's chip made inside: the warp path), as a bundle."""
    pytest.importorskip("face_recognition_models")
    out = tmp_path_factory.mktemp("bundles") / "g2d_lfw"
    export_bundle("g2d_lfw", out)
    return out


def _torch_embedder(model):
    from insightface_g2d.embedders.factory import build_embedder
    from insightface_g2d.recognition.model_source import resolve_model

    return build_embedder(resolve_model(model)[0])


@pytest.mark.parametrize("which", ["tiny", "g2d_lfw"])
@pytest.mark.parametrize("flip", [False, True])
def test_bundle_embeddings_equal_pytorch(which, flip, request):
    bundle = request.getfixturevalue("tiny_bundle" if which == "tiny" else "ready_bundle")
    model = request.getfixturevalue("tiny_run") if which == "tiny" else "g2d_lfw"
    crops = np.concatenate([_synthetic_faces(4), np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3),
                                                                                      dtype=np.uint8)])
    ref = l2_normalize(_torch_embedder(model).embed_images(crops, 64, flip, progress=False))
    got = l2_normalize(Bundle(bundle).embedder().embed_images(crops, 5, flip))  # batches of 5: 5 + 2
    assert got.shape == ref.shape == (7, 32 if which == "tiny" else 128)
    assert np.abs(got - ref).max() <= 1e-4


def test_manifest_says_what_is_inside(ready_bundle):
    import hashlib

    doc = read_manifest(ready_bundle)
    assert doc["format_version"] == 1 and doc["model"] == "g2d_lfw"
    assert doc["recognizer"]["size"] == 150 and doc["recognizer"]["warp"].shape == (2, 3)  # dlib's chip
    assert doc["recognizer"]["dim"] == 128 and doc["thresholds"] == "thresholds.json"
    assert set(doc["files"]) == {"recognizer.onnx", "thresholds.json", "front_end/front_end.json",
                                 "front_end/landmarks.onnx", "front_end/masked_hog.svm"}
    for name, entry in doc["files"].items():
        data = (ready_bundle / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert {"torch", "onnx", "onnxruntime", "opset"} <= set(doc["exported_with"])
    assert {"front_end", "refit", "recognizer"} <= set(doc["licences"])


def test_onnx_landmark_network_equals_pytorch(tiny_bundle):
    from insightface_g2d.faces.front_end_folder import load_landmark_net
    from insightface_g2d.faces.landmark_net_onnx import OnnxLandmarkNet

    views = np.random.default_rng(3).integers(0, 256, (9, 96, 96, 3), dtype=np.uint8)
    p_ref, s_ref = load_landmark_net().predict(views)
    p_got, s_got = OnnxLandmarkNet(tiny_bundle / "front_end" / "landmarks.onnx").predict(views)
    assert p_got.shape == (9, 5, 2) and s_got.shape == (9,)
    assert np.abs(p_got - p_ref).max() <= 1e-3 and np.abs(s_got - s_ref).max() <= 1e-5


def test_front_ends_find_the_same_points(tiny_bundle):
    from insightface_g2d.faces.finders import build_finder, finder_spec

    photo = _tight_photo(_synthetic_faces(1, seed=5)[0])
    found = [build_finder(finder_spec(d, assume_cropped=True)).find(photo).landmarks
             for d in ("g2d", f"g2d:{tiny_bundle / 'front_end'}")]
    assert found[0].shape == (5, 2) and np.abs(found[0] - found[1]).max() <= 1e-2  # photo pixels


def test_recognizer_runs_the_bundle_without_pytorch(ready_bundle, tmp_path, request):
    """End to end in a process that cannot import torch, equal to the PyTorch path: crops, a tight
    synthetic face through the front end, and (with LFW) photos found, aligned and verified."""
    from insightface_g2d import FaceRecognizer
    from insightface_g2d.faces.finders import build_finder, finder_spec

    crops = _synthetic_faces(3, seed=7)
    tight = _tight_photo(crops[0])
    photos = []
    lfw = os.environ.get("G2D_LFW_ROOT") or str(REPO.parent / "shared" / "data" / "lfw")
    if (Path(lfw) / "lfw-deepfunneled").is_dir():
        photos = [Path(lfw) / "lfw-deepfunneled" / "Colin_Powell" / f"Colin_Powell_000{i}.jpg" for i in (1, 2)]
    out = _run_without_torch(ready_bundle, crops, tight, photos, tmp_path)
    assert out["torch_imported"] is False
    rec = FaceRecognizer("g2d_lfw")
    assert np.abs(np.asarray(out["crops"]) - rec.embed_crops(crops)).max() <= 1e-4
    ref = build_finder(finder_spec("g2d", assume_cropped=True)).find(tight).landmarks
    assert np.abs(np.asarray(out["tight"]) - ref).max() <= 1e-2  # photo pixels: views are ~1/3 of them
    if photos:
        ref = rec.embed(photos)
        assert np.abs(np.asarray(out["photos"]) - np.stack(ref)).max() <= 1e-4
        assert abs(out["score"] - rec.verify(*photos).score) <= 1e-4


def test_bundle_thresholds_and_flip_travel(ready_bundle):
    from insightface_g2d import FaceRecognizer

    rec = FaceRecognizer(ready_bundle)
    ref = FaceRecognizer("g2d_lfw")
    assert rec.resolve_threshold()[0] == ref.resolve_threshold()[0]
    assert rec.flip == ref.flip and rec.embedder.dim == 128


def _link_front_end_out(folder):
    """front_end/ replaced by a link to a copy of it outside the bundle."""
    outside = folder.parent / "elsewhere"
    shutil.move(str(folder / "front_end"), str(outside))
    (folder / "front_end").symlink_to(outside, target_is_directory=True)


def _copy(bundle, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


def _edit_manifest(folder, change):
    path = folder / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("damage, words", [
    (lambda f: (f / "recognizer.onnx").write_bytes(b"\0" * 100), "bytes"),
    (lambda f: (f / "front_end" / "landmarks.onnx").write_bytes(
        (f / "front_end" / "landmarks.onnx").read_bytes()[::-1]), "SHA-256"),
    (lambda f: (f / "front_end" / "masked_hog.svm").unlink(), "missing"),
    (lambda f: (f / "manifest.json").write_text("{not json"), "cannot read bundle manifest"),
    (lambda f: (f / "manifest.json").write_text("[]"), "not an insightface_g2d bundle"),
    (lambda f: _edit_manifest(f, lambda d: d.update(format_version=99)), "version 99"),
    (lambda f: _edit_manifest(f, lambda d: d["files"].update({"../outside": {"bytes": 1, "sha256": "0"}})),
     "outside the bundle"),
    (lambda f: _edit_manifest(f, lambda d: d["recognizer"].update(warp=[[1, 2], [3]])), "'recognizer' must be"),
    (lambda f: _edit_manifest(f, lambda d: d["recognizer"].update(dim="128")), "'recognizer' must be"),
    (lambda f: _edit_manifest(f, lambda d: d["recognizer"].update(dim=64)), "not what the manifest says"),
    (lambda f: _edit_manifest(f, lambda d: d["files"].pop("front_end/landmarks.onnx")), "does not list"),
    (lambda f: (f / "front_end" / "landmarks.pt").write_bytes(b"x"), "does not list: front_end/landmarks.pt"),
    (lambda f: _edit_manifest(f, lambda d: d.update(model=["x"])), "'model' must be"),
    (lambda f: _link_front_end_out(f), "symbolic link"),
])
def test_damaged_bundles_are_refused_in_one_line(tiny_bundle, tmp_path, damage, words):
    from insightface_g2d import FaceRecognizer

    folder = _copy(tiny_bundle, tmp_path)
    damage(folder)
    with pytest.raises(DataError) as err:
        FaceRecognizer(folder)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_foreign_landmark_onnx_is_refused(tiny_bundle, tiny_run, tmp_path):
    """A front-end folder whose landmarks.onnx is another network (here the face model) or garbage."""
    from insightface_g2d.faces.finders import build_finder, finder_spec

    folder = tmp_path / "fe"
    shutil.copytree(tiny_bundle / "front_end", folder)
    shutil.copy(tiny_bundle / "recognizer.onnx", folder / "landmarks.onnx")
    with pytest.raises(DataError, match="not the front end's landmark network"):
        build_finder(finder_spec(f"g2d:{folder}"))
    (folder / "landmarks.onnx").write_bytes(b"garbage")
    with pytest.raises(DataError, match="onnxruntime cannot load landmark network"):
        build_finder(finder_spec(f"g2d:{folder}"))


def test_export_refuses_what_it_cannot_write(tiny_bundle, tiny_run, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        export_bundle(tiny_run, tmp_path / "full")
    with pytest.raises(ConfigError, match="not a bundle"):
        export_bundle(tiny_run, tmp_path / "full", force=True)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="PyTorch face model"):
        export_bundle(str(tiny_bundle / "recognizer.onnx"), tmp_path / "b")
    with pytest.raises(ConfigError, match="a bundle already"):
        export_bundle(tiny_bundle, tmp_path / "c")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    (tmp_path / "cache").mkdir()  # another tool's folder with a manifest.json (a teacher cache has one)
    (tmp_path / "cache" / "manifest.json").write_text('{"format": "teacher cache"}')
    (tmp_path / "cache" / "embeddings.npy").write_bytes(b"keep")
    with pytest.raises(ConfigError, match="not a bundle"):
        export_bundle(tiny_run, tmp_path / "cache", force=True)
    assert (tmp_path / "cache" / "embeddings.npy").read_bytes() == b"keep"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        export_bundle(tiny_run, tmp_path / "file")
    for bad in (float("nan"), -1.0):
        with pytest.raises(ConfigError, match="tolerance"):
            export_bundle(tiny_run, tmp_path / "d", tolerance=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "file", "full"]  # nothing left behind


def test_force_replaces_a_bundle_whole(tiny_run, tiny_bundle, tmp_path, one_torch_thread):
    """--force over a bundle: the new one in place, the old one gone, nothing else left in the folder."""
    out = _copy(tiny_bundle, tmp_path)
    before = read_manifest(out)["files"]["recognizer.onnx"]
    other = tmp_path / "run2"
    other.mkdir()
    export_bundle(write_tiny_run(other, seed=1), out, force=True)
    assert read_manifest(out)["files"]["recognizer.onnx"] != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "run2"]
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # as a folder made with mkdir, not a private temp dir


def test_cli_export_then_verify(tiny_run, tmp_path, capsys, one_torch_thread):
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.face import main
    from insightface_g2d.data.image_io import write_image

    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "b"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dim"] == 32 and info["parity"]["embedding"] <= 1e-4
    assert isinstance(Bundle(tmp_path / "b").embedder(), BundleEmbedder)
    assert run_cli(main, ["export", "--model", str(tiny_run), "--out", str(tmp_path / "b")]) == 2  # exists
    assert "--force" in capsys.readouterr().err
    faces = _synthetic_faces(2, seed=11)
    for i, face in enumerate(faces):
        write_image(tmp_path / f"p{i}.png", _tight_photo(face))
    photos = [str(tmp_path / "p0.png"), str(tmp_path / "p1.png")]
    assert main(["verify", "--model", str(tmp_path / "b"), "--json", "--threshold", "0.5"] + photos) == 0
    doc = json.loads(capsys.readouterr().out)
    from insightface_g2d import FaceRecognizer

    ref = FaceRecognizer(tiny_run, threshold=0.5).verify(*photos)
    assert doc["threshold"] == 0.5 and (doc["score"] is None) == (ref.score is None)
    if ref.score is not None:
        assert abs(doc["score"] - ref.score) <= 1e-4 and doc["same"] == ref.same

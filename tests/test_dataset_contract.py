"""Every dataset kind through every consumer: the same faces as synthetic spec, image folder,
RecordIO folder and .rec file must give the same training run inputs, .bin, evaluation pairs and
teacher caches."""
import json

import cv2
import numpy as np
import pytest
import torch

from insightface_g2d.cli import cache as cache_cli
from insightface_g2d.cli import evaluate as eval_cli
from insightface_g2d.cli.common import run_cli
from insightface_g2d.data.factory import build_face_dataset, face_labels
from insightface_g2d.data.pack import pack_folder
from insightface_g2d.data.synthetic import SyntheticFaces
from insightface_g2d.evaluation.binfile import decode_image, encode_image, load_bin
from insightface_g2d.teachers import TeacherCache
from insightface_g2d.training.evaluate import load_pairs, make_pairs

from training_tools import write_job

SPEC = "synthetic:ids=4,per_id=6,seed=11"
KINDS = ("synthetic", "image folder", "RecordIO folder", ".rec")


@pytest.fixture(scope="module")
def reference():
    ds = SyntheticFaces(num_identities=4, images_per_identity=6, seed=11)
    return np.stack([ds[i][0] for i in range(len(ds))]), ds.labels


@pytest.fixture(scope="module")
def specs(tmp_path_factory, reference):
    """kind -> dataset spec of the same 24 faces (PNG in the folder: lossless, so pixels are equal)."""
    root = tmp_path_factory.mktemp("kinds")
    images, labels = reference
    for i, (img, label) in enumerate(zip(images, labels)):
        path = root / "folder" / f"id_{label:02d}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    pack_folder(root / "folder", root / "recdir", progress=False)
    pack_folder(root / "folder", root / "single" / "faces.rec", progress=False)
    return {"synthetic": SPEC, "image folder": str(root / "folder"), "RecordIO folder": str(root / "recdir"),
            ".rec": str(root / "single" / "faces.rec")}


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    from insightface_g2d import get_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "g2d_t.pth"
    torch.save(get_model("g2d_t", num_features=16).state_dict(), path)
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_every_consumer_reads_every_kind(kind, specs, reference, teacher_checkpoint, tmp_path, capsys,
                                         one_torch_thread):
    spec = specs[kind]
    images, labels = reference
    ds = build_face_dataset(spec)
    assert len(ds) == 24 and ds.num_classes == 4
    np.testing.assert_array_equal(face_labels(ds), labels)
    np.testing.assert_array_equal(np.stack([ds[i][0] for i in range(len(ds))]), images)

    # make-bin: the pairs drawn from the labels, the faces JPEG-encoded
    out = tmp_path / "pairs.bin"
    assert run_cli(eval_cli.main, ["make-bin", "--dataset", spec, "--pairs", "12", "--seed", "3",
                                   "--out", str(out)]) == 0, capsys.readouterr().err
    index, issame = make_pairs(labels, 12, seed=3)
    got, got_same = load_bin(out)
    np.testing.assert_array_equal(got_same, issame)
    np.testing.assert_array_equal(got, np.stack([decode_image(encode_image(images[i])) for i in index.ravel()]))

    # config.eval.pairs with the dataset spec
    ev_images, ev_same = load_pairs({"pairs": spec, "num_pairs": 12, "seed": 3})
    np.testing.assert_array_equal(ev_same, issame)
    np.testing.assert_array_equal(ev_images, images[index.ravel()])

    # g2d-cache build: the teacher's embeddings of the clean faces and their mirrors
    assert run_cli(cache_cli.main, ["build", "--dataset", spec, "--teacher-network", "g2d_t", "--teacher-checkpoint",
                                    str(teacher_checkpoint), "--out", str(tmp_path / "cache"), "--dtype", "float32",
                                    "--batch-size", "8", "--device", "cpu"]) == 0, capsys.readouterr().err
    from insightface_g2d.embedders.factory import build_teacher

    teacher = build_teacher({"network": "g2d_t", "checkpoint": str(teacher_checkpoint)})
    from insightface_g2d.data.transforms import to_tensor

    expect = teacher.embed(to_tensor(images)).float()
    cache = TeacherCache(tmp_path / "cache", dataset=ds)
    torch.testing.assert_close(cache.lookup(torch.arange(24)), expect, atol=1e-4, rtol=1e-4)

    # g2d-cache import: embeddings computed elsewhere, checked against the dataset
    emb = np.random.default_rng(0).standard_normal((24, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    assert run_cli(cache_cli.main, ["import", "--dataset", spec, "--embeddings", str(tmp_path / "emb.npy"),
                                    "--out", str(tmp_path / "imported"), "--dtype", "float32"]) == 0
    imported = TeacherCache(tmp_path / "imported", dataset=build_face_dataset(spec))
    np.testing.assert_array_equal(imported.lookup(torch.arange(24)).numpy(), emb)

    # g2d-train: an arcface stage and a reform stage on the dataset, evaluated on pairs of it
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training

    stages = """[
        dict(name="base", kind="arcface", network="g2d_t", steps=2, optimizer="adamw", lr=1e-3, scale=16.0),
        dict(name="reform", steps=1),
    ]"""
    job = write_job(tmp_path, stages=stages, rec=spec, extra=f"""
        config.eval = dict(enabled=True, pairs="{spec}", num_pairs=12, seed=3, protocols=("clean", "masked-clean"))
        """)
    summary = run_training(load_config(job), output=str(tmp_path / "run"), device="cpu")
    assert summary["status"] == "finished"
    doc = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert doc["num_pairs"] == 12 and set(doc["models"]) == {"base", "G2D"}
    assert (tmp_path / "run" / "model.pt").is_file()
    roc = tmp_path / "run" / "eval_roc.png"  # the ROC curves of the evaluation, written by the run
    assert doc["roc_png"] == str(roc) and roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(roc)).shape == (500, 700, 3)


def _corrupt_image_of_record(rec_path, key):
    """Zero the first bytes of record `key`'s image (its header stays readable)."""
    from insightface_g2d.data.recordio import HEADER_SIZE, read_index

    keys, offsets = read_index(str(rec_path)[:-4] + ".idx")
    at = int(offsets[list(keys).index(key)]) + 8 + HEADER_SIZE
    with open(rec_path, "r+b") as f:
        f.seek(at)
        f.write(b"\0" * 16)


def test_skip_bad_from_cli_and_config(specs, tmp_path, capsys):
    import shutil

    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import load_dataset

    rec = tmp_path / "bad.rec"
    shutil.copy(specs[".rec"], rec)
    shutil.copy(specs[".rec"][:-4] + ".idx", tmp_path / "bad.idx")
    _corrupt_image_of_record(rec, 5)
    argv = ["make-bin", "--dataset", str(rec), "--pairs", "100", "--out", str(tmp_path / "x.bin")]
    assert run_cli(eval_cli.main, argv) == 2
    err = capsys.readouterr().err
    assert "record key 5" in err and "--skip-bad" in err and not (tmp_path / "x.bin").exists()
    assert run_cli(eval_cli.main, argv + ["--skip-bad"]) == 0
    assert len(load_bin(tmp_path / "x.bin")[1]) == 100
    job = write_job(tmp_path, rec=str(rec))
    assert load_dataset(load_config(job)).skip_bad is False
    ds = load_dataset(load_config(job, ["skip_bad=True"]))
    assert ds.skip_bad is True
    np.testing.assert_array_equal(ds[4][0], build_face_dataset(specs[".rec"])[5][0])  # key 5 -> next good item
    assert ds.bad_count == 1


def test_image_folder_skip_bad_and_resize_warning(tmp_path, caplog):
    from insightface_g2d.data.folder import ImageFolderFaces
    from insightface_g2d.errors import DataError

    (tmp_path / "a").mkdir()
    img = np.full((250, 250, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "a" / "1.png"), img)
    (tmp_path / "a" / "2.png").write_bytes(b"not an image")
    cv2.imwrite(str(tmp_path / "a" / "3.png"), img[:112, :112] + 10)
    with pytest.raises(DataError, match="2.png"):
        ImageFolderFaces(tmp_path)[1]
    ds = build_face_dataset(str(tmp_path), skip_bad=True)
    with caplog.at_level("WARNING"):
        assert ds[0][0].shape == (112, 112, 3)
    assert "250x250, not an aligned 112x112 face" in caplog.text and "g2d-data align" in caplog.text
    assert int(ds[1][0][0, 0, 0]) == 100 and ds.bad_count == 1  # 2.png -> 3.png


def test_wandb_is_refused_not_ignored(tmp_path):
    from insightface_g2d.errors import ConfigError
    from insightface_g2d.training.config import load_config

    job = write_job(tmp_path)
    assert load_config(job, ["wandb_project='mine'"]).wandb_project == "mine"  # accepted, unused
    with pytest.raises(ConfigError, match="using_wandb = True: g2d-train does not log to Weights & Biases"):
        load_config(job, ["using_wandb=True"])

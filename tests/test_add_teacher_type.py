"""docs/architecture.md "Add a teacher type", done exactly as written: the module and the registry
line read from that page, then the new type serves as config.teacher of a g2d-train run, in config.eval.models of its
report, as a model spec of g2d-eval compare and verify, and in g2d-cache build --teacher -- with no
other edit."""
import importlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main as eval_main
from insightface_g2d.embedders import registry
from insightface_g2d.errors import ConfigError
from insightface_g2d.evaluation.binfile import write_bin
from insightface_g2d.evaluation.verification import verification_metrics
from insightface_g2d.training.config import load_config
from insightface_g2d.training.runner import run_training

from training_tools import one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def recipe_blocks():
    """The python code blocks of the recipe "Add a teacher type": the module and the registry line."""
    section = DOCS.read_text().split("### Add a teacher type\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def projection(tmp_path, monkeypatch):
    """The module written and imported, and step 2 of the recipe: its line in the registry."""
    module_code, registry_line = recipe_blocks()
    key, cls_name = re.fullmatch(r'\s*"(\w+)": (\w+),\s*', registry_line).group(1, 2)
    assert (key, cls_name) == ("projection", "ProjectionEmbedder")
    (tmp_path / "projection_teacher.py").write_text(module_code)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("projection_teacher")
    monkeypatch.setitem(registry.EMBEDDER_TYPES, key, getattr(module, cls_name))
    yield module.ProjectionEmbedder
    sys.modules.pop("projection_teacher", None)


def independent_embeddings(images, dim, seed, flip=True):
    """The projection computed here in float64, without the module: [N, dim] (+ mirror image)."""
    weight = torch.randn(48, dim, generator=torch.Generator().manual_seed(seed)).double()
    x = torch.from_numpy(np.asarray(images)).double().permute(0, 3, 1, 2) / 127.5 - 1.0

    def project(t):
        return torch.nn.functional.adaptive_avg_pool2d(t, 4).flatten(1) @ weight

    emb = project(x) + project(x.flip(3)) if flip else project(x)
    return emb.numpy()


def test_a_new_type_is_a_training_teacher_and_an_evaluated_model(projection, tmp_path, monkeypatch):
    calls = []
    forward = projection.forward
    monkeypatch.setattr(projection, "forward", lambda self, faces: calls.append(len(faces)) or forward(self, faces))
    eval_section = ("config.eval = dict(enabled=True, pairs='synthetic:ids=6,per_id=4,seed=11,offset=1000', "
                    "num_pairs=40, protocols=['clean', 'masked-clean'], models=dict(T='projection:32', G2D='model'))\n")
    job = write_job(tmp_path, '[dict(name="reform", steps=2)]',
                    "config.teacher = dict(projection=32, seed=1)\n" + eval_section)
    summary = run_training(load_config(job), output=str(tmp_path / "run"), device="cpu")
    assert summary["status"] == "finished"
    assert calls, "the reform stage never asked the new teacher for targets"
    # the end-of-training report evaluated the new type like any model
    from insightface_g2d.training.evaluate import load_pairs

    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["models"]["T"]["spec"] == "projection:32"
    images, issame = load_pairs(load_config(job).eval)
    want = verification_metrics(independent_embeddings(images, 32, 0), issame)
    assert report["models"]["T"]["clean"]["accuracy"] == pytest.approx(want["accuracy"], abs=1e-9)
    # its keys are checked like the built-in types' keys
    bad = write_job(tmp_path, '[dict(name="reform", steps=2)]', "config.teacher = dict(projection=32, sed=1)\n",
                    name="bad.py")
    with pytest.raises(ConfigError, match="unknown key 'sed' in config.teacher.*did you mean 'seed'"):
        load_config(bad)


def _pairs_bin(path):
    from insightface_g2d.data.synthetic import SyntheticFaces

    ds = SyntheticFaces(num_identities=12, images_per_identity=2, seed=0)
    images, issame = [], []
    for p in range(12):
        same = p < 6
        images += [ds[2 * p][0], ds[2 * p + 1][0] if same else ds[2 * ((p + 1) % 12) + 1][0]]
        issame.append(same)
    images, issame = np.stack(images), np.array(issame)
    write_bin(path, images, issame)
    return images, issame


def test_a_new_type_is_a_model_of_g2d_eval(projection, tmp_path):
    images, issame = _pairs_bin(tmp_path / "tiny.bin")
    argv = ["compare", "--model", "P=projection:16", "--target", str(tmp_path / "tiny.bin"), "--protocol", "clean",
            "--out", str(tmp_path / "cmp"), "--device", "cpu", "--quiet"]
    assert run_cli(eval_main, argv) == 0
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    want = verification_metrics(independent_embeddings(images, 16, 0), issame)
    assert doc["results"]["P"]["tiny"]["clean"]["accuracy"] == pytest.approx(want["accuracy"], abs=1e-9)
    assert doc["results"]["P"]["tiny"]["clean"]["auc"] == pytest.approx(want["auc"], abs=1e-6)
    argv = ["verify", "--model", "projection:8", "--bin", str(tmp_path / "tiny.bin"), "--no-flip", "--device", "cpu",
            "--json", str(tmp_path / "verify.json"), "--quiet"]
    assert run_cli(eval_main, argv) == 0
    got = json.loads((tmp_path / "verify.json").read_text())["targets"]["tiny"]["clean"]
    want = verification_metrics(independent_embeddings(images, 8, 0, flip=False), issame)
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-9)


def test_a_new_type_fills_a_teacher_cache(projection, tmp_path):
    from insightface_g2d.cli.cache import main as cache_main
    from insightface_g2d.data.factory import build_face_dataset
    from insightface_g2d.embedders.factory import build_teacher

    spec = "synthetic:ids=2,per_id=3,seed=1"
    assert run_cli(cache_main, ["build", "--dataset", spec, "--teacher", "projection:8", "--out", str(tmp_path / "c"),
                                "--dtype", "float32", "--device", "cpu"]) == 0
    dataset = build_face_dataset(spec)
    cache = build_teacher(str(tmp_path / "c"), dataset=dataset)
    images = np.stack([np.asarray(dataset[i][0]) for i in range(len(dataset))])
    idx = torch.arange(len(dataset))
    np.testing.assert_allclose(cache.lookup(idx, torch.zeros(len(idx), dtype=torch.bool)).numpy(),
                               independent_embeddings(images, 8, 0, flip=False), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(cache.lookup(idx, torch.ones(len(idx), dtype=torch.bool)).numpy(),
                               independent_embeddings(images[:, :, ::-1].copy(), 8, 0, flip=False), atol=1e-4, rtol=1e-4)
    # a stale cache's rebuild command names the new type the way it was given
    with pytest.raises(ConfigError, match="--teacher projection:8"):
        build_teacher(str(tmp_path / "c"), dataset=build_face_dataset("synthetic:ids=2,per_id=3,seed=2"))

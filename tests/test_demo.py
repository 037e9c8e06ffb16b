"""The demo recipe end to end at toy size: train baseline + G2D, evaluate, write the comparison."""
import json
from pathlib import Path

import numpy as np
import pytest

from insightface_g2d.training.config import load_config
from insightface_g2d.training.evaluate import make_pairs
from insightface_g2d.training.runner import run_training

from training_tools import one_thread

_threads = pytest.fixture(autouse=True)(one_thread)
DEMO = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "demo.py"


def test_demo_config_trains_a_teacher_then_g2d_and_evaluates_both(tmp_path, capsys):
    cfg = load_config(DEMO)
    assert [s["name"] for s in cfg.stages] == ["baseline", "inpaint", "reform", "classify"]
    assert cfg.teacher == {"stage": "baseline"} and cfg.eval.enabled
    small = load_config(DEMO, [
        "rec=synthetic:ids=6,per_id=6,seed=5", "num_classes=6", "batch_size=8", "frequent=100",
        "stages.baseline.steps=2", "stages.inpaint.steps=1", "stages.inpaint.batch_size=4",
        "stages.reform.steps=2", "stages.classify.steps=1",
        "eval.pairs=synthetic:ids=5,per_id=4,seed=5,offset=1000", "eval.num_pairs=40", "cpu_threads=None",
    ])
    summary = run_training(small, output=str(tmp_path / "demo"))
    assert summary["status"] == "finished"
    table = capsys.readouterr().out
    doc = json.loads((tmp_path / "demo" / "eval.json").read_text())
    labels = list(small.eval.models)
    assert list(doc["models"]) == labels and doc["num_pairs"] == 40
    for label in labels:
        for protocol in ("clean", "masked-masked", "masked-clean"):
            m = doc["models"][label][protocol]
            assert 0.0 <= m["accuracy"] <= 1.0 and m["num_pairs"] == 40
            assert m["num_positive"] == 20
        assert label in table
    md = (tmp_path / "demo" / "eval.md").read_text()
    assert "| model | clean acc | masked-masked acc | masked-clean acc | TAR@FAR=1e-02 (masked-clean) |" in md
    assert summary["eval"]["models"][labels[1]]["spec"] == "model"


def test_make_pairs_is_balanced_deterministic_and_valid():
    labels = np.repeat(np.arange(10), 4)
    pairs, same = make_pairs(labels, 100, seed=4)
    assert same.sum() == 50 and len(pairs) == 100
    assert len({(min(a, b), max(a, b)) for a, b in pairs.tolist()}) == 100  # no pair twice
    assert all((labels[a] == labels[b]) == s and a != b for (a, b), s in zip(pairs, same))
    again, same2 = make_pairs(labels, 100, seed=4)
    assert np.array_equal(pairs, again) and np.array_equal(same, same2)
    assert not np.array_equal(make_pairs(labels, 100, seed=5)[0], pairs)
    assert 0 < same[:50].sum() < 50  # shuffled: genuine and impostor pairs mixed within folds

"""Thresholds at stated FARs and of best accuracy (evaluation/thresholds.py), checked against a
brute-force computation written from their definitions, and the thresholds file."""
import json

import numpy as np
import pytest

from insightface_g2d.errors import ConfigError, DataError
from insightface_g2d.evaluation import thresholds as th


def _brute_far(scores, issame, far):
    """The lowest threshold among every candidate (each score and the float just above it) that
    accepts at most floor(far x impostors) impostor pairs."""
    imp = scores[~issame]
    k = int(np.floor(far * len(imp) + 1e-9))
    candidates = sorted(set(scores) | {np.nextafter(s, np.inf) for s in scores})
    return min(t for t in candidates if (imp >= t).sum() <= k)


def _brute_accuracy(scores, issame):
    """The best accuracy any threshold reaches (tried at every score and above the highest)."""
    candidates = list(scores) + [np.nextafter(scores.max(), np.inf)]
    return max(((scores >= t) == issame).mean() for t in candidates)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_far_and_best_accuracy_thresholds_match_their_definitions(seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(400) < 0.5
    scores = np.where(issame, rng.normal(0.6, 0.15, 400), rng.normal(0.2, 0.15, 400)).round(2)  # ties on purpose
    found = th.measure_thresholds(scores, issame, fars=(1e-1, 1e-2))
    for far in (1e-1, 1e-2):
        entry = found[th.far_name(far)]
        assert entry["threshold"] == _brute_far(scores, issame, far)
        assert entry["far"] <= far
        assert entry["tar"] == pytest.approx((scores[issame] >= entry["threshold"]).mean())
    best = found[th.BEST_ACCURACY]
    assert best["accuracy"] == pytest.approx(_brute_accuracy(scores, issame))
    assert ((scores >= best["threshold"]) == issame).mean() == pytest.approx(best["accuracy"])


def test_a_far_needs_enough_impostor_pairs():
    issame = np.array([True] * 100 + [False] * 100)
    scores = np.linspace(0, 1, 200)[::-1]
    found = th.measure_thresholds(scores, issame)
    assert th.far_name(1e-2) in found and th.far_name(1e-3) not in found and th.far_name(1e-4) not in found
    assert found[th.far_name(1e-2)]["far"] == 0.01  # 100 impostors: one may pass at 1e-2
    assert th.threshold_at_far(scores[150:], issame[150:], 1e-2) is None  # 50 impostors


def test_thresholds_file_round_trip_and_picking(tmp_path):
    rng = np.random.default_rng(3)
    issame = np.arange(2000) % 2 == 0
    scores = np.where(issame, rng.normal(0.7, 0.1, 2000), rng.normal(0.1, 0.1, 2000))
    sets = [th.measured_set(scores, issame, "lfw", "clean"),
            th.measured_set(scores - 0.1, issame, "lfw", "masked-clean")]
    doc = th.thresholds_document(sets, model="g2d:model.pt")
    path = th.write_thresholds(tmp_path / "model.thresholds.json", doc)
    back = th.read_thresholds(path)
    assert back["units"].startswith("cosine") and back["default"] == "far=1e-3"
    value, where = th.pick_threshold(back)
    assert where.startswith("far=1e-3 measured on lfw masked-clean (2000 pairs)")
    assert value == pytest.approx(back["sets"]["lfw/masked-clean"]["thresholds"]["far=1e-3"]["threshold"])
    clean = back["sets"]["lfw/clean"]["thresholds"]
    assert th.pick_threshold(back, "clean:far=0.001")[0] == clean["far=1e-3"]["threshold"]
    assert "best-accuracy" in th.pick_threshold(back, "best-accuracy")[1]
    with pytest.raises(ConfigError, match="far=1e-4"):
        th.pick_threshold(back, "far=1e-4")
    (tmp_path / "other.json").write_text(json.dumps({"sets": {}}))
    with pytest.raises(DataError, match="not a thresholds file"):
        th.read_thresholds(tmp_path / "other.json")
    assert th.thresholds_path(tmp_path / "model.pt") == str(tmp_path / "model.thresholds.json")


def test_default_falls_back_when_far_1e_3_is_not_measurable():
    issame = np.arange(200) % 2 == 0
    doc = th.thresholds_document([th.measured_set(np.linspace(1, 0, 200), issame, "small", "clean")])
    assert doc["default"] == "far=1e-2"


def test_compare_writes_each_models_thresholds_beside_it_and_in_its_folder(tmp_path, one_torch_thread):
    import torch

    from insightface_g2d.backbones.registry import get_model
    from insightface_g2d.data.synthetic import SyntheticFaces
    from insightface_g2d.evaluation.binfile import write_bin
    from insightface_g2d.evaluation.compare import compare

    faces = SyntheticFaces(num_identities=6, images_per_identity=2, seed=0)
    images = np.stack([faces[i][0] for i in range(12)])
    issame = np.array([True, False] * 3)
    write_bin(tmp_path / "tiny.bin", images, issame)
    torch.manual_seed(0)
    torch.save(get_model("g2d_t", num_features=16).state_dict(), tmp_path / "g2d_t.pt")
    doc = compare([("T one", f"g2d_t:{tmp_path / 'g2d_t.pt'}")], [str(tmp_path / "tiny.bin")],
                  protocols=["clean"], out_dir=str(tmp_path / "out"), progress=False)
    written = th.read_thresholds(doc["files"]["thresholds_T_one"])
    beside = th.read_thresholds(tmp_path / "g2d_t.thresholds.json")
    assert written == beside and set(written["sets"]) == {"tiny/clean"}
    entry = written["sets"]["tiny/clean"]
    assert entry["num_pairs"] == 6 and entry["num_impostor"] == 3 and "best-accuracy" in entry["thresholds"]
    assert written["default"] == "best-accuracy"  # 3 impostor pairs measure no FAR


def test_dlibs_shipped_thresholds_are_found_by_name():
    from insightface_g2d.recognition.model_source import resolve_model, thresholds_file_for

    for name in ("dlib", "dlib_resnet", "dlib:dlib-bin"):
        spec, model_file, shipped = resolve_model(name)
        assert spec == name and model_file is None and shipped is not None
    doc = th.read_thresholds(thresholds_file_for(None, resolve_model("dlib")[2]))
    value, where = th.pick_threshold(doc)
    assert where.startswith("far=1e-3 measured on lfw-view2 masked-clean (6000 pairs)") and 0.8 < value < 1

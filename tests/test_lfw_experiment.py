"""The real-face comparison's pieces (experiments/lfw.py, cli/lfw.py); LFW itself only where needed."""

import pytest

from insightface_g2d.errors import ConfigError, DataError
from insightface_g2d.experiments import lfw


def test_lfw_root_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("G2D_LFW_ROOT", raising=False)
    (tmp_path / "lfw-deepfunneled").mkdir()
    with pytest.raises(DataError, match="landmarks5.tsv, peopleDevTrain.txt, pairsDevTest.txt"):
        lfw.lfw_root(tmp_path)


def test_arms_and_configs():
    assert [a.name for a in lfw.ARMS] == ["teacher", "arcface_masked", "distill", "g2d", "teacher_finetuned",
                                          "g2d_pretrained", "g2d_real", "teacher_finetuned_real"]
    with pytest.raises(ConfigError, match="did you mean 'distill'"):
        lfw.find_arm("distil")
    networks = {}
    for arm in lfw.ARMS[1:]:
        cfg = lfw.load_arm_config(arm)
        networks[arm.name] = cfg.network
        # every student arm: the teacher's embedding size, the seen styles only
        assert cfg.embedding_size == 128
        assert tuple(cfg.masks["styles"]) == lfw.SEEN_STYLES
        assert not set(lfw.UNSEEN_STYLES) & set(cfg.masks["styles"])
        assert (cfg.teacher is not None) == arm.uses_teacher
        # the arms started from a pretrained network start from the teacher's own weights
        assert (cfg.init == "dlib") == (arm.name in ("teacher_finetuned", "g2d_pretrained", "g2d_real",
                                                     "teacher_finetuned_real"))
        # the real-photo arms are their base arm plus masks.degrade, nothing else
        if arm.name.endswith("_real"):
            base = lfw.load_arm_config(lfw.find_arm(arm.name.replace("_real", "") if arm.name != "g2d_real"
                                                    else "g2d_pretrained"))
            assert cfg.masks.pop("degrade") is True and cfg.masks == base.masks
            def rest(c):
                skip = ("masks", "config_path", "job_name", "stages")
                return ({k: v for k, v in c.items() if k not in skip},
                        [{k: v for k, v in st.items() if k != "masks"} for st in c.stages])
            assert rest(cfg) == rest(base)
    # (b)-(d) share one small network; (e) is the teacher's architecture, (f) G2D cut from it
    assert {networks[a] for a in ("arcface_masked", "distill", "g2d")} == {"g2d_t"}
    assert (networks["teacher_finetuned"], networks["g2d_pretrained"]) == ("dlib_resnet", "g2d_dlib")


def test_protocol_names_parse():
    from insightface_g2d.evaluation.protocols import parse_protocol

    kinds = [parse_protocol(p)[0] for p in lfw.PROTOCOLS]
    assert kinds == ["clean", "masked-clean", "masked-masked", "masked-clean", "masked-masked"]
    assert parse_protocol(lfw.PROTOCOLS[3])[1] == lfw.UNSEEN_STYLES


def test_comparison_markdown_rows():
    results = {"A": {p: {"accuracy": 0.9 + i / 100} for i, p in enumerate(lfw.PROTOCOLS)}}
    text = lfw.comparison_markdown(results, {"A": 12.34}, {"train_images": 10, "train_people": 3, "threads": 1})
    assert "| A | 12.3 | 90.00 | 91.00 | 92.00 | 93.00 | 94.00 |" in text
    assert "masked-clean unseen" in text


def test_stored_evaluation_is_reused_and_plots(tmp_path, monkeypatch):
    """An arm's evaluation stored by one run is read back by the next (the same command resumes)
    and its ROC points plot: numpy arrays are stored as JSON lists."""
    import json

    import numpy as np

    calls = []

    def fake_compare(models, targets, **kw):
        calls.append(models)
        label = models[0][0]
        roc = {p: {"fpr": np.linspace(0, 1, 5), "tpr": np.linspace(0.5, 1, 5)} for p in lfw.PROTOCOLS}
        return {"results": {label: {"devtest": {p: {"accuracy": 0.9} for p in lfw.PROTOCOLS}}},
                "roc": {"devtest": {label: roc}}}

    monkeypatch.setattr("insightface_g2d.evaluation.compare.compare", fake_compare)
    monkeypatch.setattr(lfw, "lfw_target", lambda *a: "devtest")
    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    arm = lfw.find_arm("g2d")
    first = lfw.evaluate_arm(arm, f"g2d_t:{model}", tmp_path, tmp_path, progress=False)
    stored = json.loads((tmp_path / "eval" / "g2d.json").read_text())
    assert stored["roc"][lfw.PROTOCOLS[0]]["fpr"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    again = lfw.evaluate_arm(arm, f"g2d_t:{model}", tmp_path, tmp_path, progress=False)
    assert len(calls) == 1 and again["results"] == stored["results"]
    png = lfw.plot_comparison_roc({"first": first, "again": again}, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 1000 and str(png).endswith("roc.png")


def test_cli_overrides_and_help(capsys):
    from insightface_g2d.cli.lfw import _overrides, main

    assert _overrides(["g2d:stages.reform.steps=10", "g2d:lr=0.1", "distill:seed=1"]) == {
        "g2d": ["stages.reform.steps=10", "lr=0.1"], "distill": ["seed=1"]}
    with pytest.raises(ConfigError, match="ARM:KEY=VALUE"):
        _overrides(["stages.reform.steps=10"])
    for sub in ("compare", "prepare", "teacher-check"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        assert "example:" in capsys.readouterr().out


def test_prepare_devtrain_aligns_and_skips_done(lfw_root, tmp_path):
    from insightface_g2d.data.factory import build_face_dataset
    from insightface_g2d.experiments.lfw_data import prepare_devtrain

    people = tmp_path / "few.txt"
    people.write_text("AJ_Cook\nAbel_Pacheco\n")
    out, count, n_people = prepare_devtrain(lfw_root, tmp_path / "faces", people_file=people, progress=False)
    ds = build_face_dataset(str(out))
    assert (count, n_people, len(ds), ds.num_classes) == (5, 2, 5, 2)
    img, _ = ds[0]
    assert img.shape == (112, 112, 3)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    prepare_devtrain(lfw_root, tmp_path / "faces", people_file=people, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before

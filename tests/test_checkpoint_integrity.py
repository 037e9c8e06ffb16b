"""Checkpoints carry a checksum, finite weights and the identity of their dataset; damage, NaN and
another dataset are refused with the project's own one-line errors."""
import os
import random

import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.train import main
from insightface_g2d.errors import CheckpointError, TrainingError
from insightface_g2d.training.checkpoint import atomic_save, load_checkpoint
from insightface_g2d.training.config import load_config
from insightface_g2d.training.integrity import content_checksum, seal
from insightface_g2d.training.runner import run_training

from training_tools import load, one_thread, write_job
from trust_tools import quad_kind  # noqa: F401  (the fixture registering the quad stage kind)

_threads = pytest.fixture(autouse=True)(one_thread)
pytestmark = pytest.mark.usefixtures("quad_kind")

ARC = '[dict(name="base", kind="arcface", network="g2d_t", steps=4, optimizer="adamw", lr=1e-3, scale=16.0)]'


def _stopped(tmp_path, stages=ARC, step=2, rec="synthetic:ids=4,per_id=8,seed=3"):
    job = write_job(tmp_path, stages, rec=rec)
    out = tmp_path / "run"

    def stop(run, s):
        if s == step:
            run.stop.request()

    assert run_training(load_config(job), output=str(out), on_step=stop)["status"] == "stopped"
    return job, out, out / "checkpoint_gpu_0.pt"


def _cli(job, out, capsys, *extra):
    """(exit code, the error line): the run logs to stderr too, the error is its last line, alone."""
    code = run_cli(main, [str(job), "--output", str(out), "--device", "cpu", *extra])
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("error: ")
    return code, last


def test_checksum_is_stored_and_covers_every_value():
    ckpt = {"a": torch.arange(6.0).view(2, 3), "b": {"n": 3, "s": "x", "t": (1.5, None, True)}}
    sealed = seal(ckpt)
    assert sealed["checksum"] == content_checksum(ckpt) and sealed["checksum"].startswith("sha256:")
    for changed in ({**ckpt, "a": ckpt["a"].clone().index_put_((torch.tensor([0]), torch.tensor([0])),
                                                              torch.tensor(0.5))},
                    {**ckpt, "b": {"n": 4, "s": "x", "t": (1.5, None, True)}},
                    {**ckpt, "a": ckpt["a"].double()}, {**ckpt, "a": ckpt["a"].view(3, 2)}):
        assert content_checksum(changed) != sealed["checksum"]


def test_bytes_changed_inside_a_tensor_are_caught_by_the_checksum(tmp_path, capsys):
    job, out, path = _stopped(tmp_path)
    ckpt = load(path)
    assert ckpt["checksum"].startswith("sha256:") and ckpt["dataset"]["images"] == 32
    weight = max(ckpt["modules"]["base"].values(), key=lambda t: t.numel())
    assert weight.numel() * 4 >= 4096
    data = path.read_bytes()
    start = data.index(weight.numpy().tobytes())
    noise = random.Random(0).randbytes(4096)
    path.write_bytes(data[:start] + noise + data[start + 4096:])
    assert torch.load(path, map_location="cpu", weights_only=True)  # torch itself notices nothing
    with pytest.raises(CheckpointError, match="is damaged: its content does not match the checksum"):
        load_checkpoint(path)
    code, err = _cli(job, out, capsys)
    assert code == 2 and err.count("\n") == 0 and "checkpoint_gpu_0.pt" in err and "damaged" in err
    assert not (out / "stage_base.pt").exists()


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_random_bytes_anywhere_give_one_line_and_never_torch_advice(tmp_path, capsys, where):
    job, out, path = _stopped(tmp_path)
    data = path.read_bytes()
    at = int(len(data) * where)
    path.write_bytes(data[:at] + random.Random(at).randbytes(4096) + data[at + 4096:])
    code, err = _cli(job, out, capsys)
    assert code == 2 and err.count("\n") == 0 and "checkpoint_gpu_0.pt" in err
    assert "weights_only" not in err and ("damaged" in err or "not a PyTorch checkpoint" in err)
    assert not (out / "stage_base.pt").exists()


def test_unsafe_checkpoint_message_is_the_projects_own(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": os.getcwd, "w": torch.zeros(2)}, path)  # pickles a reference to a function
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "holds Python objects (posix.getcwd)" in msg and "refused" in msg and "weights_only" not in msg


def test_non_finite_weights_are_refused_on_load(tmp_path, capsys):
    job, out, path = _stopped(tmp_path)
    ckpt = load(path)
    ckpt["modules"]["base_head"]["weight"][0, 0] = float("nan")
    atomic_save(seal(ckpt), path)  # a consistent checksum: only the values are wrong
    with pytest.raises(CheckpointError, match=r"holds NaN/inf weights \(base_head\.weight\)"):
        load_checkpoint(path)
    code, err = _cli(job, out, capsys)
    assert code == 2 and "NaN/inf" in err


def test_nan_weights_are_never_written_into_a_stage_file(tmp_path):
    job = write_job(tmp_path, '[dict(name="q", kind="quad", steps=3, poison_at=3)]', "config.checkpoint_every = 1\n")
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"NaN/inf \(quad\.weight\); .*stage_q\.pt was not written"):
        run_training(load_config(job), output=str(out))
    assert not (out / "stage_q.pt").exists()
    assert load(out / "checkpoint_gpu_0.pt")["global_step"] == 2  # the last good checkpoint stays
    job = write_job(tmp_path, '[dict(name="q", kind="quad", steps=3, poison_at=2)]', "config.checkpoint_every = 1\n",
                    name="p2.py")
    with pytest.raises(TrainingError, match=r"at step 2: the weights hold NaN/inf .*checkpoint_gpu_0\.pt was not "):
        run_training(load_config(job), output=str(tmp_path / "run2"))
    assert load(tmp_path / "run2" / "checkpoint_gpu_0.pt")["global_step"] == 1


def test_resume_on_other_data_of_the_same_size_names_both_datasets(tmp_path):
    job, out, path = _stopped(tmp_path)
    other = write_job(tmp_path, ARC, rec="synthetic:ids=4,per_id=8,seed=4", name="other.py")
    with pytest.raises(CheckpointError) as err:
        run_training(load_config(other), output=str(out))
    msg = str(err.value)
    assert "'synthetic:ids=4,per_id=8,seed=3' (32 images, 4 identities" in msg
    assert "'synthetic:ids=4,per_id=8,seed=4' (32 images, 4 identities" in msg and "same size" in msg


def test_finished_stage_on_another_identity_count_names_the_dataset(tmp_path):
    stages = '[dict(name="classify", steps=1), dict(name="q", kind="quad", steps=1)]'
    job = write_job(tmp_path, stages)
    out = tmp_path / "run"
    run_training(load_config(job), output=str(out), stage="classify")
    other = write_job(tmp_path, stages, rec="synthetic:ids=8,per_id=4,seed=3", name="other.py")
    with pytest.raises(CheckpointError) as err:
        run_training(load_config(other), output=str(out))
    msg = str(err.value)
    assert "stage_classify.pt was trained on dataset 'synthetic:ids=4,per_id=8,seed=3' (32 images, 4 identities" in msg
    assert "8 identities" in msg and "network or embedding size" not in msg


def test_exports_are_written_before_the_stage_file_that_marks_the_stage_finished(tmp_path, monkeypatch):
    """A kill between the two writes must leave the stage unfinished (so it is redone), never a
    finished stage without its export."""
    from insightface_g2d.training import checkpoint as ckpt_mod
    from insightface_g2d.training import runner as runner_mod

    order = []
    real = ckpt_mod.atomic_save

    def recording(obj, path):
        order.append(os.path.basename(str(path)))
        return real(obj, path)

    monkeypatch.setattr(ckpt_mod, "atomic_save", recording)
    monkeypatch.setattr(runner_mod, "atomic_save", recording)
    run_training(load_config(write_job(tmp_path, ARC)), output=str(tmp_path / "run"))
    assert order == ["base_model.pt", "stage_base.pt", "model.pt"]

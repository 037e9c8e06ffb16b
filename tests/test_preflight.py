"""Everything a run can check is checked before its first step (and before it writes a file);
small hardening items: unread top-level keys, huge heads, pair paths leaving the root, quiet
broken pipes."""
import os
import subprocess
import sys
import time

import pytest
import torch

from insightface_g2d import get_model
from insightface_g2d.errors import ConfigError, DataError
from insightface_g2d.training.config import load_config
from insightface_g2d.training.runner import run_training

from training_tools import one_thread, write_job
from trust_tools import quad_kind  # noqa: F401  (the fixture registering the quad stage kind)

_threads = pytest.fixture(autouse=True)(one_thread)
pytestmark = pytest.mark.usefixtures("quad_kind")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_missing_eval_pairs_are_refused_before_the_first_step(tmp_path):
    job = write_job(tmp_path, '[dict(name="q", kind="quad", steps=2)]',
                    "config.eval = dict(enabled=True, pairs=None)\n")
    steps = []
    with pytest.raises(ConfigError, match="config.eval.enabled needs config.eval.pairs"):
        run_training(load_config(job), output=str(tmp_path / "run"), on_step=lambda run, s: steps.append(s))
    assert steps == []
    job = write_job(tmp_path, '[dict(name="q", kind="quad", steps=2)]',
                    f"config.eval = dict(enabled=True, pairs={str(tmp_path / 'nope.bin')!r})\n", name="b.py")
    with pytest.raises(DataError, match="nope.bin' does not exist; fix the path or pass --no-eval"):
        run_training(load_config(job), output=str(tmp_path / "run"), on_step=lambda run, s: steps.append(s))
    assert steps == [] and not (tmp_path / "run").exists()


def test_a_teacher_of_the_wrong_size_is_refused_before_earlier_stages_train(tmp_path):
    path = tmp_path / "teacher.pth"
    torch.save(get_model("g2d_t", num_features=16).state_dict(), path)
    stages = '[dict(name="q", kind="quad", steps=2), dict(name="reform", steps=1)]'
    job = write_job(tmp_path, stages, f"config.teacher = dict(network='g2d_t', checkpoint={str(path)!r})\n")
    steps = []
    with pytest.raises(ConfigError, match="teacher embeddings have 16 dimensions but embedding_size is 32"):
        run_training(load_config(job), output=str(tmp_path / "run"), on_step=lambda run, s: steps.append(s))
    assert steps == []  # the quad stage never started
    stages = ('[dict(name="base", kind="arcface", network="g2d_t", steps=1, embedding_size=16), '
              'dict(name="reform", steps=1)]')
    with pytest.raises(ConfigError, match=r"16 dimensions \(stage 'base'\) but embedding_size is 32"):
        run_training(load_config(write_job(tmp_path, stages, name="s.py")), output=str(tmp_path / "run2"),
                     on_step=lambda run, s: steps.append(s))
    assert steps == []


def test_a_later_stage_whose_batch_the_data_cannot_fill_is_refused_before_any_stage_trains(tmp_path):
    """32 images: the quad stage's batch of 8 fits, the second stage's batch of 64 does not."""
    stages = '[dict(name="q", kind="quad", steps=2), dict(name="q2", kind="quad", steps=2, batch_size=64)]'
    job = write_job(tmp_path, stages)
    steps = []
    with pytest.raises(ConfigError, match=r"stage 'q2': 32 images over 1 process\(es\) do not fill one batch of 64"):
        run_training(load_config(job), output=str(tmp_path / "run"), on_step=lambda run, s: steps.append(s))
    assert steps == [] and not (tmp_path / "run").exists()
    # the demo's shape: an arcface baseline, then inpaint with a larger batch, on a 10-image folder
    stages = ('[dict(name="base", kind="arcface", network="g2d_t", steps=1, batch_size=4), '
              'dict(name="inpaint", steps=1, batch_size=16, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8))]')
    job = write_job(tmp_path, stages, name="demo10.py", rec="synthetic:ids=2,per_id=5,seed=3")
    with pytest.raises(ConfigError, match=r"stage 'inpaint': 10 images .* do not fill one batch of 16"):
        run_training(load_config(job), output=str(tmp_path / "run10"), on_step=lambda run, s: steps.append(s))
    assert steps == [] and not (tmp_path / "run10").exists()
    # --stage base: inpaint does not train in this run, so only base is checked
    assert run_training(load_config(job), output=str(tmp_path / "run10"), stage="base")["status"] == "partial"


def test_a_head_larger_than_memory_is_refused_before_it_is_allocated(tmp_path):
    job = write_job(tmp_path, '[dict(name="classify", steps=1)]', rec="synthetic:ids=1000000000,per_id=1,seed=3")
    t0 = time.time()
    with pytest.raises(ConfigError) as err:
        run_training(load_config(job), output=str(tmp_path / "run"))
    msg = str(err.value)
    # 1e9 identities x 32 floats x 4 bytes = 119.2 GiB
    assert "need 119.2 GiB for their weights alone (head 1000000000 x 32" in msg and "fewer identities" in msg
    assert time.time() - t0 < 30 and not (tmp_path / "run").exists()


def test_top_level_keys_no_stage_reads_are_reported(tmp_path):
    stages = '[dict(name="q", kind="quad", steps=1, lr=0.1), dict(name="classify", steps=1, lr=0.1)]'
    cfg = load_config(write_job(tmp_path, stages, "config.lr = 0.5\nconfig.momentum = 0.5\n"))
    # quad has its own momentum default, classify its own too; neither falls back to config.lr
    assert cfg.config_notes == ["config.lr = 0.5, config.momentum = 0.5 are read by no stage (every stage sets its "
                                "own value or has its kind's default); set it in the stages to change training"]
    run_training(cfg, output=str(tmp_path / "run"))
    log = (tmp_path / "run" / "training.log").read_text()
    assert "config.lr = 0.5, config.momentum = 0.5 are read by no stage" in log
    # a key a stage falls back to is not reported
    cfg = load_config(write_job(tmp_path, '[dict(name="q", kind="quad", steps=1, lr=None)]', "config.lr = 0.5\n",
                                name="b.py"))
    assert cfg.config_notes == [] and cfg.stages[0]["lr"] == 0.5
    cfg = load_config(tmp_path / "b.py", ["batch_size=4"])
    assert cfg.config_notes == []
    assert load_config(tmp_path / "tiny.py", ["weight_decay=0.1"]).config_notes[0].startswith(
        "config.lr = 0.5, config.momentum = 0.5, config.weight_decay = 0.1 are read by no stage")


def test_pair_paths_must_stay_under_the_root_and_errors_do_not_echo_file_bytes(tmp_path):
    from insightface_g2d.evaluation.pairs import load_pair_images, read_pairs

    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOPSECRET-0123456789")
    for line in (f"../secret.txt\t{secret}\t1\n", f"{secret}\ta/x.png\t1\n", "a/../../secret.txt\ta/x.png\t1\n"):
        pairs = read_pairs(_write(tmp_path / "pairs.txt", line), layout="generic")
        with pytest.raises(DataError, match="leave the image root"):
            load_pair_images(root, pairs)
    # a non-image inside the root: named, its bytes not shown
    (root / "a" / "x.png").write_bytes(b"TOPSECRET-0123456789")
    pairs = read_pairs(_write(tmp_path / "pairs.txt", "a/x.png\ta/x.png\t1\n"), layout="generic")
    with pytest.raises(DataError) as err:
        load_pair_images(root, pairs)
    msg = str(err.value)
    assert "x.png" in msg and "TOPSECRET" not in msg and b"TOPSECRET"[:8].hex() not in msg


def _write(path, text):
    path.write_text(text)
    return path


def test_broken_pipe_ends_quietly():
    """`g2d-info --all | head -2`: the reader leaves after two lines; no traceback, exit 141."""
    proc = subprocess.Popen([sys.executable, "-m", "insightface_g2d.cli.info", "--all", "--network", "g2d_t",
                             "--teacher", "r18"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
    first = [proc.stdout.readline() for _ in range(2)]
    proc.stdout.close()  # as head does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert first[0].startswith(b"input") and err == ""


@pytest.mark.parametrize("teacher", ['"stage:base"', 'dict(stage="base")'])
def test_a_stage_teacher_in_either_form_is_trained_first_and_then_teaches(tmp_path, teacher):
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.cli.train import main

    stages = ('[dict(name="base", kind="arcface", network="g2d_t", steps=1, optimizer="adamw", lr=1e-3, '
              'scale=16.0), dict(name="reform", steps=2)]')
    job = write_job(tmp_path, stages, f"config.teacher = {teacher}\n")
    out = tmp_path / "run"
    assert run_cli(main, [str(job), "--output", str(out), "--device", "cpu", "--no-eval"]) == 0
    reform = torch.load(out / "stage_reform.pt", map_location="cpu", weights_only=True)
    assert reform["finished"] and reform["trainer"]["global_step"] == 2
    # the reform stage's size check used stage base's network: a 16-d base is refused before training
    small = stages.replace("scale=16.0)", "scale=16.0, embedding_size=16)")
    with pytest.raises(ConfigError, match=r"16 dimensions \(stage 'base'\) but embedding_size is 32"):
        run_training(load_config(write_job(tmp_path, small, f"config.teacher = {teacher}\n", name="s.py")),
                     output=str(tmp_path / "small"))
    assert not (tmp_path / "small").exists()

"""Two processes on CPU (gloo): DistributedDataParallel keeps ranks equal; stop and resume work,
the second time through torchrun and the g2d-train module entry point; ranks that would resume
from different steps are refused; rank 0 evaluates after the process group is closed."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from training_tools import assert_states_equal, ddp_run_worker, ddp_worker, free_port, load, module_states, write_job

STAGES = """[
    dict(name="base", kind="arcface", network="g2d_t", steps=3, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="reform", steps=2),
]"""


pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A 2-process run stopped at step 2 of stage base: (folder with job.py and run/)."""
    folder = tmp_path_factory.mktemp("ddp")
    job = write_job(folder, STAGES)
    mp.spawn(ddp_worker, args=(2, free_port(), str(job), str(folder / "run"), "base", 2), nprocs=2, join=True)
    return folder


def copy_run(stopped_run, tmp_path):
    shutil.copytree(stopped_run, tmp_path, dirs_exist_ok=True)
    return str(tmp_path / "tiny.py"), str(tmp_path / "run")


def results(out):
    return [json.load(open(os.path.join(out, f"result_rank{r}.json"))) for r in (0, 1)]


def test_two_process_gloo_run_stops_and_resumes_under_torchrun(stopped_run, tmp_path):
    job, out = copy_run(stopped_run, tmp_path)
    for rank in (0, 1):
        with open(os.path.join(out, f"summary_rank{rank}.json")) as f:
            assert json.load(f)["status"] == "stopped"
    c0, c1 = load(os.path.join(out, "checkpoint_gpu_0.pt")), load(os.path.join(out, "checkpoint_gpu_1.pt"))
    assert (c0["rank"], c1["rank"], c0["world_size"], c0["global_step"]) == (0, 1, 2, 2)
    s0 = module_states(os.path.join(out, "checkpoint_gpu_0.pt"))
    s1 = module_states(os.path.join(out, "checkpoint_gpu_1.pt"))
    # DDP keeps the parameters equal (BatchNorm running statistics are per rank, as in arcface_torch)
    params = {n: {k: v for k, v in st.items() if "running_" not in k and "num_batches" not in k}
              for n, st in s0.items()}
    assert_states_equal(params, {n: {k: s1[n][k] for k in params[n]} for n in params})
    # 32 images / 2 ranks = 16 per rank = 2 batches of 8 per epoch: after 2 steps both are at epoch 0, batch 2
    assert (c0["epoch"], c0["batch_in_epoch"]) == (0, 2)

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "insightface_g2d.cli.train", str(job), "--output", out, "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = open(os.path.join(out, "training.log")).read()
    assert "resumed from" in log and "2 process(es)" in log
    for name in ("stage_base.pt", "stage_reform.pt", "model.pt", "base_model.pt"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert not os.path.exists(os.path.join(out, "checkpoint_gpu_1.pt"))
    final = module_states(os.path.join(out, "stage_reform.pt"))
    # the resumed run trained step 3 of base from the step-2 checkpoint
    assert not torch.equal(final["base"]["reformer.fc.weight"], s0["base"]["reformer.fc.weight"])
    assert load(os.path.join(out, "stage_base.pt"))["global_step"] == 3


def test_ranks_resuming_from_different_steps_are_refused_on_every_rank(stopped_run, tmp_path):
    from insightface_g2d.training.checkpoint import save_checkpoint_file

    job, out = copy_run(stopped_run, tmp_path)
    path = os.path.join(out, "checkpoint_gpu_1.pt")
    ckpt = load(path)
    ckpt["global_step"] = 1  # as if rank 1 was killed before writing its step-2 checkpoint
    save_checkpoint_file(ckpt, path, "rank 1's checkpoint")  # a valid file, sealed again
    mp.spawn(ddp_run_worker, args=(2, free_port(), job, out), nprocs=2, join=True)
    for res in results(out):
        assert res.get("error", "").startswith(
            "CheckpointError: stage 'base': the processes would resume from different steps "
            "(rank 0: step 2; rank 1: step 1)"), res


def test_rank_0_evaluates_after_the_process_group_is_closed(stopped_run, tmp_path):
    job, out = copy_run(stopped_run, tmp_path)
    mp.spawn(ddp_run_worker, args=(2, free_port(), job, out, True), nprocs=2, join=True)
    r0, r1 = results(out)
    assert r0 == {"status": "finished", "group_during_eval": False}  # no rank waits in a barrier meanwhile
    assert r1 == {"status": "finished"}

"""Two processes on CPU (gloo): DistributedDataParallel keeps ranks equal; stop and resume work,
the second time through torchrun and the g2d-train module entry point."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from training_tools import assert_states_equal, ddp_worker, free_port, load, module_states, write_job

STAGES = """[
    dict(name="base", kind="arcface", network="g2d_t", steps=3, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="reform", steps=2),
]"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_process_gloo_run_stops_and_resumes_under_torchrun(tmp_path):
    job = write_job(tmp_path, STAGES)
    out = str(tmp_path / "run")
    mp.spawn(ddp_worker, args=(2, free_port(), str(job), out, "base", 2), nprocs=2, join=True)
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

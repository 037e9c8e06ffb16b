"""Helpers shared by the training tests: tiny job files and reading results back."""
import textwrap

import torch

TINY_STAGES = """[
    dict(name="base", kind="arcface", network="g2d_t", steps=2, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="inpaint", steps=2, batch_size=4, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8)),
    dict(name="reform", steps=2),
    dict(name="classify", steps=2),
]"""


def write_job(folder, stages=TINY_STAGES, extra="", name="tiny.py", rec="synthetic:ids=4,per_id=8,seed=3"):
    """A tiny job file (g2d_t, 32-d, 32 images, batch 8) in `folder`; returns its path."""
    text = textwrap.dedent(f"""\
        from easydict import EasyDict as edict
        config = edict()
        config.network = "g2d_t"
        config.embedding_size = 32
        config.rec = "{rec}"
        config.batch_size = 8
        config.num_workers = 0
        config.frequent = 1
        config.seed = 7
        config.checkpoint_every = 1000
        config.teacher = dict(stage="base")
        config.masks = dict(prob=1.0, styles=("surgical", "n95"), positions=("normal",))
        config.stages = {textwrap.indent(stages, "        ").lstrip()}
        """) + textwrap.dedent(extra)
    path = folder / name
    path.write_text(text)
    return path


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def module_states(stage_path):
    """name -> state dict of every module stored in a stage file or checkpoint."""
    from insightface_g2d.training.checkpoint import checkpoint_modules

    return checkpoint_modules(load(stage_path))


def assert_states_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}.{k} differs"


def one_thread():
    """Generator for an autouse fixture: torch on one thread (the test machine's 2 cores are shared,
    and oversubscribed intra-op threads make tiny nets several times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ddp_worker(rank, world_size, port, job, output, stop_stage, stop_step):
    """torch.multiprocessing.spawn target: one rank of a CPU/gloo run that stops at (stage, step).

    Ranks agree on a stop request in the all-reduce of the step after the request, so the request
    is made at step - 1 (step >= 2)."""
    import json
    import os

    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training

    def on_step(run, step):
        if run.stage.name == stop_stage and step == stop_step - 1:
            run.stop.request()

    summary = run_training(load_config(job), output=output, device="cpu", on_step=on_step)
    with open(os.path.join(output, f"summary_rank{rank}.json"), "w") as f:
        json.dump({"status": summary["status"]}, f)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_run_worker(rank, world_size, port, job, output, probe_eval=False):
    """spawn target: one rank of a CPU/gloo run to the end; writes result_rank<rank>.json with the
    status or the error message, and (probe_eval) whether a process group was still up while rank 0
    evaluated (the evaluation itself is replaced by that probe)."""
    import json
    import os

    import torch.distributed as dist

    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from insightface_g2d.errors import G2DError
    from insightface_g2d.training import evaluate
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training

    result = {}
    if probe_eval:
        def probe(*args, **kwargs):
            result["group_during_eval"] = dist.is_available() and dist.is_initialized()
            return {}
        evaluate.evaluate_run = probe
    cfg = load_config(job)
    cfg.eval.enabled = bool(probe_eval)
    if probe_eval:  # checked before training (pairs are needed); the probe never reads them
        cfg.eval.pairs = "synthetic:ids=4,per_id=2,seed=1,offset=1000"
        cfg.eval.num_pairs = 8  # of the 9 distinct pairs these 8 faces allow
    try:
        result["status"] = run_training(cfg, output=output, device="cpu")["status"]
    except G2DError as err:
        result["error"] = f"{type(err).__name__}: {err}"
    with open(os.path.join(output, f"result_rank{rank}.json"), "w") as f:
        json.dump(result, f)

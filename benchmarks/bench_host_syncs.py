"""Host syncs and Python-level collectives per training step, counted on a CPU.

    python benchmarks/bench_host_syncs.py                    # one process
    python benchmarks/bench_host_syncs.py --world-size 2     # two gloo processes (counts all-reduces)
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_host_syncs.py   # another version, same counter

On a GPU every read of device data by the host (`.item()`, `.tolist()`, `bool()`/`int()`/`float()`
of a tensor, `.cpu()`, `nonzero`, ...) waits for all queued kernels: the GPU idles while the
Python side catches up. No GPU is needed to count them: a TorchFunctionMode sees every such call
during the training loop of a tiny run (g2d_t, synthetic faces), and tells device data from host
data by provenance. Host data are the batches as the DataLoader yields them (before `to_device`),
the entries `to_device` leaves on the host, tensors created without a `device`, torch.optim's
`step` counters (on the CPU unless capturable or fused), and whatever is computed from host data only;
everything else (parameters, model outputs, losses, tensors created by the step) would live on the
GPU. A step is one iteration of the stage's loop body: host checks, `to_device`, the training step,
logging, checkpoints, the stop check (checkpoints, previews and logging are off except at the last
step, reported separately). Collectives are the calls of torch.distributed's all_reduce, all_gather,
broadcast and barrier (DDP's own gradient all-reduce is not among them).

Not counted here: the GradScaler's own sync in `scaler.step` (CUDA float16 only: one per optimizer
per step), and host-to-device copies of pageable memory.
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import textwrap
import weakref

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

SYNC_CALLS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "__array__", "numpy", "cpu",
              "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"}
COLLECTIVES = ("all_reduce", "all_gather", "broadcast", "barrier")


def _tensors(obj, out):
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _tensors(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors(o, out)
    return out


class SyncCounter(TorchFunctionMode):
    """Counts host reads of device data (see the module doc) while `active`."""

    def __init__(self):
        super().__init__()
        self.host = {}
        self.active = False
        self.current = [0, 0]  # (syncs, collectives) of the loop iteration being counted
        self.sites = {}

    def mark_host(self, *objs):
        for t in _tensors(list(objs), []):
            key = id(t)
            self.host[key] = weakref.ref(t, lambda _, k=key: self.host.pop(k, None))

    def unmark(self, t):
        self.host.pop(id(t), None)

    def is_host(self, t):
        ref = self.host.get(id(t))
        return ref is not None and ref() is t

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        inputs = _tensors([args, kwargs], [])
        host_only = bool(inputs) and all(self.is_host(t) for t in inputs)
        synced = self.active and name in SYNC_CALLS and inputs and not host_only
        frame = sys._getframe(1)
        if synced and frame.f_code.co_name == "_get_value" and "optim" in frame.f_code.co_filename:
            synced = False  # torch.optim's `step` counters live on the CPU (device="cpu") unless capturable/fused
        if synced:
            self.current[0] += 1
            site = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} {name}"
            self.sites[site] = self.sites.get(site, 0) + 1
        out = func(*args, **kwargs)
        if synced and name == "cpu" and any(out is t for t in inputs):
            out = out.clone()  # on a GPU .cpu() is a new tensor; the device original stays device data
        created_on_host = not inputs and kwargs.get("device") is None  # e.g. torch.tensor(0.0): CPU on any machine
        if host_only or synced or created_on_host:  # host data, or just brought to the host
            self.mark_host(out)
        return out


def instrument(counter, per_stage):
    """Patch StageRun (loader, run) and to_device so the counter sees each loop iteration."""
    from insightface_g2d.training import loop

    real_loader, real_run, real_to_device = loop.StageRun._loader, loop.StageRun.run, loop.to_device

    def to_device(batch, device):
        was = counter.active
        counter.active = False
        where = real_to_device(batch, torch.device("meta"))  # which entries this version moves
        out = {}
        for k, v in batch.items():
            if torch.is_tensor(v) and where[k].is_meta:
                out[k] = v.clone()  # stands for the device copy
                counter.unmark(out[k])
            else:
                out[k] = v
        counter.active = was
        return out

    def loader(self, epoch, start):
        it = iter(real_loader(self, epoch, start))
        while True:
            counter.active = False
            try:
                batch = next(it)
            except StopIteration:
                return
            counter.mark_host(batch)
            per_stage.setdefault(self.stage.name, []).append([0, 0])
            counter.current = per_stage[self.stage.name][-1]
            counter.active = True
            yield batch

    def run(self):
        try:
            return real_run(self)
        finally:
            counter.active = False

    loop.to_device = to_device
    loop.StageRun._loader = loader
    loop.StageRun.run = run

    for name in COLLECTIVES:
        real = getattr(dist, name)

        def wrapped(*args, _real=real, **kwargs):
            if counter.active:
                counter.current[1] += 1
            return _real(*args, **kwargs)
        setattr(dist, name, wrapped)


JOB = """\
from easydict import EasyDict as edict
config = edict()
config.network = "g2d_t"
config.embedding_size = 32
config.rec = "synthetic:ids=4,per_id=16,seed=3"
config.batch_size = 8
config.num_workers = 0
config.frequent = 1000
config.seed = 7
config.checkpoint_every = 1000
config.teacher = dict(stage="base")
config.masks = dict(prob=1.0, styles=("surgical",), positions=("normal",))
config.stages = [
    dict(name="base", kind="arcface", network="g2d_t", steps={steps}, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="inpaint", steps={steps}, batch_size=4, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8)),
    dict(name="reform", steps={steps}),
    dict(name="reform_cache", kind="reform", steps={steps}, teacher=dict(cache={cache!r})),
    dict(name="classify", steps={steps}),
]
"""


def build_cache(folder, rec):
    from insightface_g2d import get_model
    from insightface_g2d.data.factory import build_face_dataset
    from insightface_g2d.embedders.torch_network import TorchEmbedder
    from insightface_g2d.teachers import build_teacher_cache

    torch.manual_seed(0)
    teacher = TorchEmbedder(get_model("g2d_t", num_features=32), name="random g2d_t", channels_last=False)
    path = os.path.join(folder, "cache")
    build_teacher_cache(teacher, build_face_dataset(rec), path, batch_size=32, progress=False)
    return path


def measure(folder):
    """Run the tiny job with the counter on; {stage: [(syncs, collectives) per loop iteration]}."""
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training

    counter, per_stage = SyncCounter(), {}
    instrument(counter, per_stage)
    cfg = load_config(os.path.join(folder, "job.py"))
    with counter:
        run_training(cfg, output=os.path.join(folder, "run"), device="cpu", evaluate=False)
    return per_stage, counter.sites


def summarise(per_stage):
    rows = {}
    for stage, iters in per_stage.items():
        body = iters[:-1] or iters  # the last iteration also logs and ends the stage
        syncs = sorted(s for s, _ in body)
        colls = sorted(c for _, c in body)
        rows[stage] = dict(steps=len(iters), syncs_per_step=syncs[len(syncs) // 2],
                           collectives_per_step=colls[len(colls) // 2],
                           last_step_syncs=iters[-1][0], last_step_collectives=iters[-1][1])
    return rows


def _worker(rank, world_size, port, folder, result):
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    per_stage, sites = measure(folder)
    if rank == 0:
        with open(result, "w") as f:
            json.dump({"per_stage": per_stage, "sites": sites}, f)


def run(world_size=1, steps=4, folder=None):
    """{stage: summary} for the package on sys.path (see `summarise`), plus where the syncs are."""
    with contextlib.ExitStack() as stack:
        folder = folder or stack.enter_context(tempfile.TemporaryDirectory())
        rec = "synthetic:ids=4,per_id=16,seed=3"
        cache = build_cache(folder, rec)
        with open(os.path.join(folder, "job.py"), "w") as f:
            f.write(textwrap.dedent(JOB.format(steps=int(steps), cache=cache)))
        if world_size == 1:
            per_stage, sites = measure(folder)
        else:
            import socket

            import torch.multiprocessing as mp

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            result = os.path.join(folder, "result.json")
            mp.spawn(_worker, args=(world_size, port, folder, result), nprocs=world_size, join=True)
            with open(result) as f:
                data = json.load(f)
            per_stage, sites = data["per_stage"], data["sites"]
        return summarise(per_stage), sites


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world-size", type=int, default=1, help="processes (gloo on CPU); 2 counts all-reduces")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per stage")
    p.add_argument("--sites", action="store_true", help="also print where the syncs happen")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import insightface_g2d

    rows, sites = run(args.world_size, args.steps)
    print(f"package: {os.path.dirname(insightface_g2d.__file__)} | processes: {args.world_size}")
    print("| stage | host syncs / step | collectives / step | last step (logs, stage end): syncs, collectives |")
    print("|---|---:|---:|---:|")
    for stage, r in rows.items():
        print(f"| {stage} | {r['syncs_per_step']} | {r['collectives_per_step']} | "
              f"{r['last_step_syncs']}, {r['last_step_collectives']} |")
    if args.sites:
        for site, n in sorted(sites.items(), key=lambda kv: -kv[1]):
            print(f"  {n:5d}  {site}")


if __name__ == "__main__":
    main()

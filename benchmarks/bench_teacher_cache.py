"""Throughput of a `reform`-stage training step with cached vs live teacher embeddings.

One step = frozen G2D encoder on masked faces, reformer forward + backward + SGD update with the
relational distillation loss against teacher embeddings, which come either from a TeacherCache
(memory-mapped float16 lookup by sample index and flip) or from a live teacher forward on the clean
faces. The networks are randomly initialised and the faces random tensors: speed does not depend
on the weights or the pixels. Cached and live steps alternate so that both see the same machine load.

    python benchmarks/bench_teacher_cache.py                      # g2d student, r100 teacher
    python benchmarks/bench_teacher_cache.py --student g2d_t --batch-size 16 --steps 4   # quick
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

from insightface_g2d import get_model
from insightface_g2d.devices import select_device
from insightface_g2d.embedders.torch_network import TorchEmbedder
from insightface_g2d.losses.registry import DISTILLATION_LOSSES, distillation_terms
from insightface_g2d.teachers import import_embeddings


class _Rows:
    """Stand-in dataset with `count` samples (only its length and fingerprint are used)."""

    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count

    def fingerprint(self):
        return f"bench-{self.count}"


WEIGHTS = {name: loss.weight for name, loss in DISTILLATION_LOSSES.items()}  # the reform stage's defaults


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="example:\n  python benchmarks/bench_teacher_cache.py --student g2d_t --steps 4",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="g2d", help="G2D variant (g2d, g2d_s, g2d_t, g2d_l)")
    p.add_argument("--teacher", default="r100", help="live teacher network (random init)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up step)")
    p.add_argument("--cache-size", type=int, default=20000, help="rows in the benchmark cache")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p.parse_args(argv)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    torch.manual_seed(0)
    student = get_model(args.student).to(device)
    student.encoder.eval().requires_grad_(False)
    student.reformer.train()
    opt = torch.optim.SGD([p for p in student.reformer.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    teacher = TorchEmbedder(get_model(args.teacher), device, name=args.teacher, channels_last=False)

    tmp = tempfile.mkdtemp(prefix="bench_cache_")
    rng = np.random.default_rng(0)
    cache = import_embeddings(rng.normal(size=(args.cache_size, teacher.dim)).astype(np.float32), _Rows(args.cache_size),
                              os.path.join(tmp, "cache"), args.teacher,
                              flipped=rng.normal(size=(args.cache_size, teacher.dim)).astype(np.float32))

    b = args.batch_size
    batches = []
    for _ in range(args.steps + 1):
        batches.append({
            "masked": torch.rand(b, 3, 112, 112, device=device) * 2 - 1,
            "clean": torch.rand(b, 3, 112, 112, device=device) * 2 - 1,
            "index": torch.from_numpy(rng.integers(0, args.cache_size, b)),
            "flipped": torch.from_numpy(rng.integers(0, 2, b).astype(bool)),
        })

    def step(batch, live):
        sync(device)
        t0 = time.perf_counter()
        if live:
            target = teacher.embed(batch["clean"])
        else:
            target = cache.lookup(batch["index"], batch["flipped"], device=device)
        sync(device)
        t1 = time.perf_counter()
        with torch.no_grad():
            desc = student.encode(batch["masked"])
        terms = distillation_terms(student.reform(desc), target, WEIGHTS)
        loss = sum(WEIGHTS[name] * value for name, value in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        return t1 - t0, time.perf_counter() - t0

    for live in (False, True):  # warm-up
        step(batches[0], live)
    total = {False: 0.0, True: 0.0}
    targets = {False: 0.0, True: 0.0}
    for batch in batches[1:]:
        for live in (False, True):
            t_target, t_step = step(batch, live)
            total[live] += t_step
            targets[live] += t_target
    n = b * args.steps
    cached_ips, live_ips = n / total[False], n / total[True]
    print(f"device {device} ({torch.get_num_threads()} threads) | student {args.student} | teacher {args.teacher} "
          f"(random init) | batch {b} | {args.steps} steps each")
    print(f"cached teacher: {cached_ips:8.2f} img/s   (lookup {1e3 * targets[False] / args.steps:8.2f} ms/batch)")
    print(f"live teacher:   {live_ips:8.2f} img/s   (teacher forward {1e3 * targets[True] / args.steps:8.2f} ms/batch)")
    print(f"speed-up (cached / live): {cached_ips / live_ips:.2f}x")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Backbone cost: parameters, counted GMACs, CPU images/s at batch 1 and 64, ratio to r50.

On a CUDA machine it also measures batch 256 with AMP (fp16 autocast).

    python benchmarks/bench_backbones.py                      # g2d variants, r50, r100, mbf
    python benchmarks/bench_backbones.py --networks g2d r50 --threads 1
"""
import argparse
import time

import torch

from insightface_g2d import get_model
from insightface_g2d.backbones.flops import count_macs, count_params


def make_runner(model, batch, device, amp=False):
    """A closure running one timed forward pass; returns seconds."""
    x = torch.randn(batch, 3, 112, 112, device=device)
    ctx = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp else (lambda: torch.autocast("cpu", enabled=False))

    def run():
        with torch.no_grad(), ctx():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

    run()  # warm-up (allocations, kernels, cudnn autotune)
    return run


def interleaved_images_per_second(models, batch, device, repeats, amp=False):
    """Best-of-`repeats` images/s per network, networks timed round-robin.

    Round-robin means every network sees the same machine load on average, so the ratios to r50
    stay meaningful on a shared machine even when absolute figures drift.
    """
    runners = {name: make_runner(m, batch, device, amp) for name, m in models.items()}
    best = {name: float("inf") for name in models}
    for _ in range(repeats):
        for name, run in runners.items():
            best[name] = min(best[name], run())
    return {name: batch / t for name, t in best.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["g2d_t", "g2d_s", "g2d", "g2d_l", "mbf", "r50", "r100"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(dict.fromkeys(args.networks + ["r50"]))

    models = {name: get_model(name).eval() for name in names}
    rows = {name: dict(params=count_params(m) / 1e6, gmacs=count_macs(m) / 1e9) for name, m in models.items()}
    for b in args.batches:
        for name, ips in interleaved_images_per_second(models, b, "cpu", args.repeats).items():
            rows[name][f"cpu_b{b}"] = ips
        print(f"measured batch {b}", flush=True)
    if torch.cuda.is_available():
        cuda_models = {name: m.cuda() for name, m in models.items()}
        for name, ips in interleaved_images_per_second(cuda_models, 256, "cuda", args.repeats, amp=True).items():
            rows[name]["gpu_b256_amp"] = ips

    ref = rows["r50"]
    cols = [k for k in ref if k.startswith(("cpu", "gpu"))]
    print(f"\nCPU threads: {torch.get_num_threads()}" + (f", GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    header = "| network | params (M) | GMACs | GMACs / r50 | " + " | ".join(f"{c} img/s | {c} / r50" for c in cols) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, row in rows.items():
        cells = [f"{row[c]:.1f} | {row[c] / ref[c]:.2f}x" for c in cols]
        print(f"| {name} | {row['params']:.2f} | {row['gmacs']:.2f} | {row['gmacs'] / ref['gmacs']:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

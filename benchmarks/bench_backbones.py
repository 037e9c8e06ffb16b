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


def images_per_second(model, batch, device, repeats, amp=False):
    x = torch.randn(batch, 3, 112, 112, device=device)
    ctx = torch.autocast("cuda", dtype=torch.float16) if amp else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        model(x)  # warm-up (allocations, kernels, cudnn autotune)
        if device == "cuda":
            torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeats):  # best of N: least disturbed by other processes
            start = time.perf_counter()
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return batch / best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["g2d_t", "g2d_s", "g2d", "g2d_l", "mbf", "r50", "r100"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(dict.fromkeys(args.networks + ["r50"]))

    rows = {}
    for name in names:
        model = get_model(name).eval()
        row = dict(params=count_params(model) / 1e6, gmacs=count_macs(model) / 1e9)
        for b in args.batches:
            row[f"cpu_b{b}"] = images_per_second(model, b, "cpu", args.repeats)
        if torch.cuda.is_available():
            row["gpu_b256_amp"] = images_per_second(model.cuda(), 256, "cuda", args.repeats, amp=True)
        rows[name] = row
        print(f"measured {name}", flush=True)

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

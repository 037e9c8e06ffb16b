"""Benchmark: decode + embed throughput on a .bin verification set, ours vs arcface_torch's.

Writes a 112x112 JPEG `.bin` (synthetic faces by default: matched pairs are two photos of one
synthetic identity, mismatched pairs photos of two identities) into a temporary folder, then in
the same process, with the same backbone object in eval mode:
  ours    insightface_g2d.evaluation: load_bin (cv2, threads) + embed_images (face + mirror in
          one batch) + verification_metrics
  theirs  arcface_torch eval/verification.py: load_bin (mxnet imdecode) + test (two passes,
          face then mirror; its own metrics, without its VAL@FAR step, which fails on
          scipy >= 1.13)
and prints images/s for decode+embed (wall clock; an image counts once although it is embedded
twice, with its mirror), the metric time, the process CPU time of the whole run, both accuracies (they should agree: same network, same images) and
the ratio ours/theirs. arcface_torch's module needs mxnet, scikit-learn and scipy; if it cannot
be imported the reason is printed and only ours is measured.

    python benchmarks/bench_verification.py                      # mbf, 12,000 images, CPU
    python benchmarks/bench_verification.py --network r50 --num-images 2000 --device cuda
"""
import argparse
import contextlib
import importlib.util
import io
import os
import re
import sys
import tempfile
import time

import numpy as np
import torch

from insightface_g2d import get_model
from insightface_g2d.evaluation.binfile import encode_image, load_bin, write_bin_records
from insightface_g2d.embedders.torch_network import TorchEmbedder
from insightface_g2d.evaluation.verification import verification_metrics


def synthetic_pairs(num_pairs, seed=0):
    """2N synthetic faces: pair i matched (two photos of identity i) when i is even."""
    from insightface_g2d.data.synthetic import render_face

    faces, issame = [], []
    for i in range(num_pairs):
        same = i % 2 == 0
        a = render_face(seed, 2 * i, 0)[0]
        b = render_face(seed, 2 * i if same else 2 * i + 1, 1)[0]
        faces += [a, b]
        issame.append(same)
    return faces, issame


def smooth_pairs(num_pairs, seed=0):
    """Fallback: smooth random images (upsampled 7x7 noise); pairs share a base image when matched."""
    import cv2

    rng = np.random.default_rng(seed)
    faces, issame = [], []
    for i in range(num_pairs):
        base = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
        other = base if i % 2 == 0 else rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
        noise = rng.integers(0, 20, (7, 7, 3), dtype=np.uint8)
        faces += [cv2.resize(base, (112, 112), interpolation=cv2.INTER_CUBIC),
                  cv2.resize(other + noise, (112, 112), interpolation=cv2.INTER_CUBIC)]
        issame.append(i % 2 == 0)
    return faces, issame


def import_arcface_verification(root):
    """arcface_torch's eval/verification.py as a module, or (None, reason)."""
    if not root:
        return None, "no --arcface-root given and ARCFACE_TORCH_ROOT is not set"
    path = os.path.join(root, "eval", "verification.py")
    if not os.path.isfile(path):
        return None, f"{path} does not exist"
    try:
        spec = importlib.util.spec_from_file_location("arcface_torch_verification", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as err:  # mxnet / sklearn missing or broken
        return None, f"cannot import {path}: {type(err).__name__}: {err}"
    # Its VAL@FAR=1e-3 step calls scipy's interp1d on FAR values with duplicates, which scipy
    # >= 1.13 rejects ("Expect x to not have duplicates"). It is not part of the accuracy nor
    # of decode+embed: skip it so `test` runs on current scipy.
    module.calculate_val = lambda *args, **kwargs: (float("nan"), float("nan"), float("nan"))
    return module, None


class _ToDevice(torch.nn.Module):
    """arcface_torch feeds CPU tensors (its DDP wrapper moves them); do the same here."""

    def __init__(self, net, device):
        super().__init__()
        self.net, self.device = net, device

    def forward(self, x):
        return self.net(x.to(self.device))


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def run_ours(path, backbone, device, batch_size):
    c0, t0 = time.process_time(), time.perf_counter()
    images, issame = load_bin(path)
    t1 = time.perf_counter()
    emb = TorchEmbedder(backbone, device).embed_images(images, batch_size=batch_size, flip=True, progress=False)
    sync(device)
    t2 = time.perf_counter()
    m = verification_metrics(emb, issame)
    t3 = time.perf_counter()
    return dict(decode=t1 - t0, embed=t2 - t1, metrics=t3 - t2, cpu=time.process_time() - c0,
                accuracy=m["accuracy"], std=m["accuracy_std"])


def run_theirs(module, path, backbone, device, batch_size):
    c0, t0 = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        data_set = module.load_bin(path, (112, 112))
    t1 = time.perf_counter()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        _, _, acc, std, _, _ = module.test(data_set, _ToDevice(backbone, device), batch_size, 10)
    sync(device)
    t2 = time.perf_counter()
    infer = float(re.search(r"infer time ([0-9.eE+-]+)", log.getvalue()).group(1))
    return dict(decode=t1 - t0, embed=infer, metrics=(t2 - t1) - infer, cpu=time.process_time() - c0,
                accuracy=acc, std=std)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="mbf")
    parser.add_argument("--num-images", type=int, default=12000, help="images in the .bin (even; default 12000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--images", choices=("synthetic", "smooth"), default="synthetic")
    parser.add_argument("--arcface-root", default=os.environ.get("ARCFACE_TORCH_ROOT", ""),
                        help="arcface_torch checkout (default: $ARCFACE_TORCH_ROOT)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per pipeline, alternating order; best is kept")
    parser.add_argument("--order", choices=("ours-first", "theirs-first"), default="theirs-first",
                        help="which pipeline runs first (the first one also warms caches)")
    args = parser.parse_args(argv)
    if args.num_images < 40 or args.num_images % 2:
        parser.error("--num-images must be an even number >= 40")
    threads = args.threads or torch.get_num_threads()
    module, why = import_arcface_verification(args.arcface_root)
    torch.set_num_threads(threads)  # importing mxnet can drop torch to 1 thread
    torch.manual_seed(0)
    backbone = get_model(args.network).to(args.device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.bin")
        t = time.perf_counter()
        make = synthetic_pairs if args.images == "synthetic" else smooth_pairs
        faces, issame = make(args.num_images // 2)
        write_bin_records(path, [encode_image(f, 95) for f in faces], issame)
        del faces
        print(f"wrote {args.num_images} {args.images} 112x112 JPEGs ({os.path.getsize(path) / 2**20:.1f} MiB) "
              f"in {time.perf_counter() - t:.1f} s")
        print(f"network {args.network}, device {args.device}, batch {args.batch_size}, "
              f"torch threads {torch.get_num_threads()}")

        with torch.no_grad():  # warm-up: first-call allocations and kernel selection
            backbone(torch.zeros(2, 3, 112, 112, device=args.device))
        runs = {}
        order = ["theirs", "ours"] if args.order == "theirs-first" else ["ours", "theirs"]
        for rep in range(args.repeat):
            for who in order if rep % 2 == 0 else order[::-1]:  # alternate to spread machine noise
                if who == "ours":
                    r = run_ours(path, backbone, args.device, args.batch_size)
                elif module is not None:
                    r = run_theirs(module, path, backbone, args.device, args.batch_size)
                else:
                    continue
                best = runs.get(who)
                if best is None or r["decode"] + r["embed"] < best["decode"] + best["embed"]:
                    runs[who] = r

    n = args.num_images
    print(f"best of {args.repeat} run(s) each:")
    print(f"{'':8s} {'decode s':>9s} {'embed s':>9s} {'img/s':>9s} {'metrics s':>10s} {'cpu s':>8s} {'accuracy':>16s}")
    for who, r in runs.items():
        rate = n / (r["decode"] + r["embed"])
        print(f"{who:8s} {r['decode']:9.2f} {r['embed']:9.2f} {rate:9.1f} {r['metrics']:10.2f} {r['cpu']:8.1f} "
              f"{100 * r['accuracy']:8.3f}+-{100 * r['std']:.3f}")
    if "theirs" in runs:
        ours = n / (runs["ours"]["decode"] + runs["ours"]["embed"])
        theirs = n / (runs["theirs"]["decode"] + runs["theirs"]["embed"])
        print(f"decode+embed throughput ratio ours/theirs: {ours / theirs:.2f}x")
        print(f"accuracy difference ours - theirs: {100 * (runs['ours']['accuracy'] - runs['theirs']['accuracy']):+.3f} points")
    else:
        print(f"arcface_torch's verification not measured: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ONNX export parity: onnxruntime and insightface's model zoo vs torch, as a markdown table.

Random weights whose BatchNorm statistics are calibrated on random faces (so embeddings have a
trained model's scale), exported with `export_onnx`, then compared at batch 1 and 3.

    python benchmarks/bench_onnx_export.py                     # g2d, g2d_s, g2d_t, mbf, r50
    python benchmarks/bench_onnx_export.py --networks g2d r100 --out /tmp/onnx
"""
import argparse
import os
import tempfile
import time
import warnings

import torch

from insightface_g2d import get_model
from insightface_g2d.evaluation.onnx_export import check_insightface, check_parity, export_onnx


def calibrated(name, seed=0):
    torch.manual_seed(seed)
    model = get_model(name)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.momentum = None  # cumulative average over the calibration batches
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(16, 3, 112, 112) * 2 - 1)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["g2d", "g2d_s", "g2d_t", "mbf", "r50"])
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--out", default=None, help="folder for the .onnx files (default: a temporary one)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    out = args.out or tempfile.mkdtemp(prefix="g2d_onnx_")
    print("| network | export s | ORT vs torch, batch 1 | batch 3 | max \\|embedding\\| | L2-normalised "
          "| insightface model zoo | get_feat(BGR) vs torch(RGB) |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for name in args.networks:
        model = calibrated(name)
        path = os.path.join(out, f"{name}.onnx")
        start = time.perf_counter()
        export_onnx(model, path, opset=args.opset)
        seconds = time.perf_counter() - start
        par = check_parity(model, path)
        zoo = check_insightface(model, path)
        print(f"| {name} | {seconds:.1f} | {par['per_batch'][1]:.1e} | {par['per_batch'][3]:.1e} | "
              f"{par['max_abs_ref']:.3g} | {par['max_abs_diff_l2']:.1e} | {zoo['model_class']}, mean/std "
              f"{zoo['input_mean']:g}/{zoo['input_std']:g} | {zoo['max_abs_diff']:.1e} |", flush=True)


if __name__ == "__main__":
    main()

"""Mask synthesis throughput on one CPU core: template bank vs per-image homography warping.

Measures, on the same aligned 112x112 faces:
  * MaskSynthesizer.apply_batch   (template bank, per-face LUT colouring + uint8 blend)
  * MaskSynthesizer.apply         (the same, one face per call: what MaskedPairDataset does)
  * baseline: per-image homography -- a full-resolution RGBA mask picture warped onto each face
    with cv2.getPerspectiveTransform + cv2.warpPerspective, then alpha-blended (the approach of
    published mask-synthesis tools), with a float numpy blend as such code writes it and with
    the uint8 OpenCV blend this project uses
and the template-bank build time. Rates are given per wall-clock second and per CPU second of
this (single-threaded) process; on a shared machine the CPU-second figure is the fair one.

    python benchmarks/bench_masks.py --faces 2048 --gpu-step-ms 200 --batch-size 128
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from insightface_g2d.masks import synthesizer as masks_mod  # noqa: E402
from insightface_g2d.data.align import align_face, read_landmarks_tsv  # noqa: E402
from insightface_g2d.data.image_io import read_image_file  # noqa: E402
from insightface_g2d.masks.styles.textured import insightface_mask_textures  # noqa: E402
from insightface_g2d.masks.synthesizer import MaskSynthesizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_faces(n, lfw_root, seed):
    """n aligned uint8 faces: LFW (aligned with its landmarks) when available, else smooth noise."""
    lfw_root = Path(lfw_root) if lfw_root else None
    if lfw_root and (lfw_root / "landmarks5.tsv").is_file():
        lmks = read_landmarks_tsv(lfw_root / "landmarks5.tsv")
        keys = sorted(lmks)
        pick = np.random.default_rng(seed).choice(len(keys), size=min(n, len(keys)), replace=False)
        out = []
        for i in pick:
            img = read_image_file(lfw_root / "lfw-deepfunneled" / keys[i])
            out.append(align_face(img, lmks[keys[i]]))
        faces = np.stack(out)
        source = f"LFW ({len(faces)} faces aligned with landmarks5.tsv)"
    else:
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (min(n, 512), 14, 14, 3), dtype=np.uint8)
        faces = np.stack([cv2.resize(s, (112, 112), interpolation=cv2.INTER_CUBIC) for s in small])
        source = "synthetic smooth-noise images (LFW not found)"
    reps = int(np.ceil(n / len(faces)))
    return np.ascontiguousarray(np.tile(faces, (reps, 1, 1, 1))[:n]), source


class HomographyBaseline:
    """Per-image mask warping as published tools do it: one full-resolution RGBA mask picture
    (here insightface's blue surgical-mask photo, 600x300, with a rounded outline as alpha),
    its four corners mapped to a randomly jittered quad on the face, warped and blended."""

    def __init__(self, fast_blend=False):
        tex = insightface_mask_textures()
        rgb = (tex[1] * 255).astype(np.uint8) if tex else np.full((64, 128, 3), (150, 198, 232), np.uint8)
        self.w, self.h = 600, 300
        rgb = cv2.resize(rgb, (self.w, self.h), interpolation=cv2.INTER_CUBIC)
        alpha = np.zeros((self.h, self.w), np.uint8)
        cv2.ellipse(alpha, (self.w // 2, 0), (self.w // 2 - 2, self.h - 4), 0, 0, 180, 255, -1, cv2.LINE_AA)
        alpha[: self.h // 3] = 255
        self.rgba = np.dstack([rgb, cv2.GaussianBlur(alpha, (0, 0), 2.0)])
        self.src = np.float32([[0, 0], [self.w, 0], [self.w, self.h], [0, self.h]])
        self.quad = np.float32([[16, 62], [96, 62], [92, 118], [20, 118]])  # nose bridge .. under chin
        self.fast_blend = fast_blend

    def apply(self, img, rng):
        dst = self.quad + rng.uniform(-3, 3, size=(4, 2)).astype(np.float32)
        m = cv2.getPerspectiveTransform(self.src, dst)
        warped = cv2.warpPerspective(self.rgba, m, (112, 112), flags=cv2.INTER_LINEAR)
        if self.fast_blend:
            out = img.copy()
            masks_mod._blend_u8(out, np.ascontiguousarray(warped[:, :, :3]), np.ascontiguousarray(warped[:, :, 3]))
            return out
        a = warped[:, :, 3:].astype(np.float32) / 255.0
        return (img.astype(np.float32) * (1.0 - a) + warped[:, :, :3].astype(np.float32) * a).astype(np.uint8)


OURS_BATCH = "ours: apply_batch (template bank)"
BASELINE = "baseline A: homography + numpy float blend"
BASELINE_FAST = "baseline B: homography + uint8 cv2 blend"
BASELINE_TEXT = ("per-image homography: a 600x300 RGBA surgical-mask photo warped onto each face with "
                 "cv2.getPerspectiveTransform + cv2.warpPerspective, then a numpy float alpha blend "
                 "(as published mask-synthesis tools write it)")
BASELINE_FAST_TEXT = "the same warp, blended with this project's uint8 OpenCV blend"


def timed(fn, repeats):
    """Best (wall seconds, cpu seconds) over repeats."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Single-core throughput of mask synthesis: template bank vs per-image homography.",
        epilog="example:\n  python benchmarks/bench_masks.py --faces 2048 --gpu-step-ms 200 --batch-size 128",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=2048, help="faces per timed run (default 2048)")
    p.add_argument("--batch", type=int, default=256, help="apply_batch batch size (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported (default 3)")
    p.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw"),
                   help="LFW folder with lfw-deepfunneled/ and landmarks5.tsv (else synthetic faces)")
    p.add_argument("--gpu-step-ms", type=float, default=200.0,
                   help="assumed GPU time of one training step, ms (default 200)")
    p.add_argument("--batch-size", type=int, default=128, help="faces per GPU per training step (default 128)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass

    faces, source = load_faces(args.faces, args.lfw, args.seed)
    n = len(faces)
    print(f"faces: {n} x 112x112 from {source}; threads: 1 (cv2, OMP); load average {os.getloadavg()[0]:.1f}")

    # bank build: a bank seed nobody else uses, so nothing comes from the process cache
    w0, c0 = time.perf_counter(), time.process_time()
    synth = MaskSynthesizer(bank_seed=987654).warmup()
    build = (time.perf_counter() - w0, time.process_time() - c0)
    groups = len(synth.styles) * len(synth.positions)
    mem = sum(g.code.nbytes + g.alpha.nbytes for row in synth.groups for g in row) / 2 ** 20
    print(f"template bank: {groups} groups x {synth.k} templates built in {build[0]:.2f} s wall, "
          f"{build[1]:.2f} s cpu ({mem:.0f} MiB)")

    def run_batch():
        rng = np.random.default_rng(args.seed)
        for i in range(0, n, args.batch):
            synth.apply_batch(faces[i:i + args.batch], rng)

    def run_single():
        rng = np.random.default_rng(args.seed)
        for f in faces:
            synth.apply(f, rng)

    base_np, base_cv = HomographyBaseline(False), HomographyBaseline(True)

    def run_base(b):
        rng = np.random.default_rng(args.seed)
        for f in faces:
            b.apply(f, rng)

    results = [
        (OURS_BATCH, timed(run_batch, args.repeats)),
        ("ours: apply, one face per call", timed(run_single, args.repeats)),
        (BASELINE, timed(lambda: run_base(base_np), args.repeats)),
        (BASELINE_FAST, timed(lambda: run_base(base_cv), args.repeats)),
    ]
    rates = {name: (n / w, n / c) for name, (w, c) in results}
    print(f"\n{'method':48s} {'faces/s (wall)':>15s} {'faces/s/core (cpu)':>19s}")
    for name, (rw, rc) in rates.items():
        print(f"{name:48s} {rw:15,.0f} {rc:19,.0f}")
    base, base_fast = rates[BASELINE], rates[BASELINE_FAST]
    print("\nratios (cpu-time rates):")
    for name in list(rates)[:2]:
        print(f"  {name:40s} {rates[name][1] / base[1]:5.1f}x baseline A, {rates[name][1] / base_fast[1]:5.1f}x "
              "baseline B")
    print(f"  baseline A = {BASELINE_TEXT}\n  baseline B = {BASELINE_FAST_TEXT}")
    print(f"\nthe README's and docs/data.md's 'apply_batch is 5.1x' is {OURS_BATCH!r} against baseline A, in "
          f"faces per CPU second; this run: {rates[OURS_BATCH][1] / base[1]:.1f}x")

    print(f"\ntraining-step share (batch {args.batch_size} faces per GPU, GPU step {args.gpu_step_ms:.0f} ms):")
    for name in list(rates)[:3]:
        ms = args.batch_size / rates[name][1] * 1000.0
        print(f"  {name:44s} {ms:6.1f} ms of one core per step = {100 * ms / args.gpu_step_ms:5.1f} % "
              "of a data-loader worker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

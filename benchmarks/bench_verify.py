"""End-to-end verification speed: photos in, same person or not out, one thread.

    python benchmarks/bench_verify.py --lfw $LFW --pairs 50
    g2d-face export --model dlib --out dlib_bundle && python benchmarks/bench_verify.py --lfw $LFW --bundle dlib_bundle

Ours: `FaceRecognizer("dlib").verify(a, b)` (the kit's front end finds and aligns each face, dlib's
ResNet in PyTorch embeds it); with --bundle also the same model as a bundle on onnxruntime
(`FaceRecognizer(BUNDLE)`, no PyTorch in its path: give a bundle exported from --model). Baseline, in the same run: face_recognition's own path, built here from
the same dlib calls that library makes (`face_locations` = dlib's HOG detector with one upsampling,
`face_encodings` = the 5-point shape predictor + dlib's `compute_face_descriptor`, one jitter; the
`face_recognition` package itself is used when it is installed). The two paths alternate pair by pair on
LFW DevTest photos, and each is timed whole; ours is also split into finding + aligning and embedding.
Prints photos per second and the ratio (ours / baseline); the time depends on the machine.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def baseline_path():
    """A function photo (uint8 RGB) -> 128-d encoding or None: face_recognition's path."""
    try:
        import face_recognition

        def encode(img):
            boxes = face_recognition.face_locations(img, number_of_times_to_upsample=1, model="hog")
            enc = face_recognition.face_encodings(img, boxes[:1], num_jitters=1, model="small")
            return enc[0] if enc else None
        return encode, "face_recognition"
    except ImportError:
        pass
    import dlib

    from insightface_g2d.dlib_models import dlib_model_file

    detector = dlib.get_frontal_face_detector()
    shape5 = dlib.shape_predictor(dlib_model_file("shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(dlib_model_file("dlib_face_recognition_resnet_model_v1.dat"))

    def encode(img):
        boxes = detector(img, 1)
        if not len(boxes):
            return None
        return np.array(net.compute_face_descriptor(img, shape5(img, boxes[0]), 1))
    return encode, "dlib calls of face_recognition's path"


def lfw_pairs(root, count):
    from insightface_g2d.evaluation.pairs import read_pairs, resolve_paths

    pairs = read_pairs(Path(root) / "pairsDevTest.txt")
    base, paths = resolve_paths(Path(root) / "lfw-deepfunneled", pairs)
    take = np.linspace(0, len(pairs) - 1, count).astype(int)
    return [(base / paths[2 * k], base / paths[2 * k + 1]) for k in take]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  python benchmarks/bench_verify.py --lfw $LFW --pairs 50")
    parser.add_argument("--lfw", default=os.environ.get("G2D_LFW_ROOT"), help="LFW folder (default $G2D_LFW_ROOT)")
    parser.add_argument("--pairs", type=int, default=50, help="DevTest pairs to verify (default 50)")
    parser.add_argument("--model", default="dlib", help="the model of our path (default dlib)")
    parser.add_argument("--bundle", help="a bundle exported from --model (g2d-face export): timed as a third path")
    args = parser.parse_args(argv)
    if not args.lfw:
        parser.error("give --lfw (the LFW folder) or set G2D_LFW_ROOT")
    import cv2
    import torch

    from insightface_g2d import FaceRecognizer
    from insightface_g2d.data.image_io import read_photo

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rec = FaceRecognizer(args.model)
    bundle = FaceRecognizer(args.bundle, threads=1) if args.bundle else None
    encode, name = baseline_path()
    pairs = lfw_pairs(args.lfw, args.pairs)
    photos = {p: read_photo(p) for pair in pairs for p in pair}  # decoding is not timed: both read the same arrays
    rec.verify(photos[pairs[0][0]], photos[pairs[0][1]])  # warm-up, both paths
    encode(photos[pairs[0][0]])
    if bundle is not None:
        bundle.verify(photos[pairs[0][0]], photos[pairs[0][1]])
    ours = base = find = on_ort = 0.0
    gap = 0.0  # largest score difference between the PyTorch path and the bundle
    for a, b in pairs:
        t0 = time.perf_counter()
        score = rec.verify(photos[a], photos[b]).score
        t1 = time.perf_counter()
        encode(photos[a])
        encode(photos[b])
        t2 = time.perf_counter()
        for p in (a, b):
            rec.finder.find(photos[p])
        t3 = time.perf_counter()
        if bundle is not None:
            other = bundle.verify(photos[a], photos[b]).score
            if (score is None) != (other is None):
                gap = float("inf")
            elif score is not None:
                gap = max(gap, abs(score - other))
        t4 = time.perf_counter()
        ours, base, find, on_ort = ours + t1 - t0, base + t2 - t1, find + t3 - t2, on_ort + t4 - t3
    n = 2 * len(pairs)
    print(f"{len(pairs)} pairs ({n} photos), one thread")
    print(f"ours (FaceRecognizer({args.model!r}).verify): {n / ours:.1f} photos/s; finding + aligning "
          f"{1000 * find / n:.1f} ms a photo, embedding and the rest {1000 * (ours - find) / n:.1f} ms")
    print(f"baseline ({name}): {n / base:.1f} photos/s")
    print(f"ratio (ours / baseline photos/s): {base / ours:.2f}x")
    if bundle is not None:
        print(f"bundle ({args.bundle}, onnxruntime): {n / on_ort:.1f} photos/s, {base / on_ort:.2f}x the baseline, "
              f"{ours / on_ort:.2f}x the PyTorch path; largest score difference from it {gap:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""RecordIO read + decode speed: insightface_g2d's mxnet-free reader vs mxnet's, in one run.

Builds a temporary .rec of N 112x112 JPEG faces (smooth synthetic images, arcface_torch layout:
header record 0, images 1..N), then reads every image in a shuffled order (as training does) with:

  ours          IndexedRecordIO.read_view + unpack_img (os.pread, cv2.imdecode, RGB)
  ours-dataset  RecordIOFaces[i] (adds label checks; what training calls)
  mx-arcface    MXIndexedRecordIO.read_idx + recordio.unpack + mx.image.imdecode().asnumpy()
                (exactly arcface_torch's MXFaceDataset.__getitem__, RGB)
  mx-cv2        MXIndexedRecordIO.read_idx + recordio.unpack_img(s, 1) (cv2, BGR: no colour fix)

and prints images/s (best of --repeats interleaved passes after a warm-up pass) and ours / mxnet ratios.
Also the raw record read rate without decoding.

    python benchmarks/bench_recordio.py
    python benchmarks/bench_recordio.py --n 5000 --repeats 5 --order sequential
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from insightface_g2d.data import recordio as R
from insightface_g2d.data.recordio_dataset import RecordIOFaces


def synthetic_face(rng, size=112):
    """A smooth uint8 [size, size, 3] RGB image with face-like blobs (JPEG size ~ a real face)."""
    base = cv2.resize(rng.integers(40, 220, (7, 7, 3), dtype=np.uint8), (size, size),
                      interpolation=cv2.INTER_CUBIC)
    detail = cv2.GaussianBlur(rng.normal(0, 18, (size, size, 3)), (0, 0), 1.2)
    img = np.clip(base + detail, 0, 255).astype(np.uint8)
    c = size // 2
    cv2.ellipse(img, (c, c), (c * 2 // 3, c * 5 // 6), 0, 0, 360, tuple(int(v) for v in rng.integers(90, 200, 3)), 2)
    for dx in (-size // 6, size // 6):
        cv2.circle(img, (c + dx, c - size // 10), size // 18, (30, 30, 30), -1)
    return img


def build(folder, n, quality, seed):
    rng = np.random.default_rng(seed)
    ids = max(1, n // 20)
    with R.IndexedRecordIOWriter(folder / "train.rec", folder / "train.idx") as w:
        w.write_idx(0, R.pack(R.IRHeader(0, [n + 1, n + 1 + ids], 0, 0), b""))
        for k in range(1, n + 1):
            label = float((k - 1) * ids // n)
            w.write_idx(k, R.pack_img(R.IRHeader(0, label, k, 0), synthetic_face(rng), quality))
        for c in range(ids):
            w.write_idx(n + 1 + c, R.pack(R.IRHeader(0, [1.0, 2.0], 0, 0), b""))
    return folder / "train.rec", folder / "train.idx"


def rates(fns, keys, repeats):
    """{name: images/s}: best of ``repeats`` passes, methods interleaved so load hits all alike."""
    for fn in fns.values():
        fn(keys)  # warm-up: page cache, lazy opens, imports
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(keys)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(keys) / t for name, t in best.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="number of faces in the temporary .rec")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the faces")
    parser.add_argument("--order", choices=["shuffled", "sequential"], default="shuffled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="folder for the .rec (default: a temporary one)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rec, idx = build(folder, args.n, args.quality, args.seed)
        keys = np.arange(1, args.n + 1)
        if args.order == "shuffled":
            keys = np.random.default_rng(args.seed).permutation(keys)
        keys = keys.tolist()
        print(f"{args.n} faces 112x112 JPEG q{args.quality}, {rec.stat().st_size / args.n / 1024:.1f} KiB/record, "
              f"{args.order} order, best of {args.repeats}; cv2 {cv2.__version__}, threads {cv2.getNumThreads()}")

        reader = R.IndexedRecordIO(rec, idx)
        ds = RecordIOFaces(folder)
        index_of = {k: k - 1 for k in keys}

        def ours(ks):
            for k in ks:
                R.unpack_img(reader.read_view(k))

        def ours_dataset(ks):
            for k in ks:
                ds[index_of[k]]

        def ours_raw(ks):
            for k in ks:
                reader.read_idx(k)

        fns = {"ours": ours, "ours-dataset": ours_dataset, "ours-raw": ours_raw}
        try:
            import mxnet as mx
        except ImportError:
            mx = None
            print("mxnet not importable: only our figures are shown")
        if mx is not None:
            mrec = mx.recordio.MXIndexedRecordIO(str(idx), str(rec), "r")

            def mx_arcface(ks):
                for k in ks:
                    _, s = mx.recordio.unpack(mrec.read_idx(k))
                    mx.image.imdecode(s).asnumpy()

            def mx_cv2(ks):
                for k in ks:
                    mx.recordio.unpack_img(mrec.read_idx(k), 1)

            def mx_raw(ks):
                for k in ks:
                    mrec.read_idx(k)

            fns.update({"mx-arcface": mx_arcface, "mx-cv2": mx_cv2, "mx-raw": mx_raw})
        results = rates(fns, keys, args.repeats)

        print("| reader | images/s |")
        print("|---|---|")
        for name, value in results.items():
            print(f"| {name} | {value:,.0f} |")
        if mx is not None:
            print(f"ours / mx-arcface (read+decode): {results['ours'] / results['mx-arcface']:.2f}x")
            print(f"ours / mx-cv2     (read+decode): {results['ours'] / results['mx-cv2']:.2f}x")
            print(f"ours-dataset / mx-arcface:       {results['ours-dataset'] / results['mx-arcface']:.2f}x")
            print(f"ours-raw / mx-raw (read only):   {results['ours-raw'] / results['mx-raw']:.2f}x")
        reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

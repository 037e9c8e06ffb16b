"""SyntheticFaces: generation speed and how much identity each face region carries.

Prints images/s on one core (identities cached and uncached) and Fisherfaces identification
accuracy on held-out identities for: the whole face, the upper face (rows 0-59), the lower face
(rows 60-111), the lower face hidden (rows 62+ grey), masked probes against clean galleries
(projection learned on clean faces), and masked faces throughout (projection learned on masked).
"""
import argparse
import time

import cv2
import numpy as np

from insightface_g2d.data.synthetic import SyntheticFaces, synthetic_identity
from linear_probe import gallery_split, region_identification  # benchmarks/linear_probe.py


def speed(n_ids, per_id):
    ds = SyntheticFaces(n_ids, per_id, seed=12345)
    t = time.process_time()
    for g in range(n_ids):
        synthetic_identity(12345, g)
    t_id = (time.process_time() - t) / n_ids
    t = time.process_time()
    for i in range(len(ds)):
        ds[i]
    rate = len(ds) / (time.process_time() - t)
    return t_id, rate


def write_preview(path):
    """8 identities x 2 rows, then one identity's 8 photos clean and masked; 256-colour PNG (~180 KB)."""
    from PIL import Image

    from insightface_g2d.masks.masked_pairs import MaskedPairDataset
    from insightface_g2d.data.synthetic import SyntheticFaces

    ds = SyntheticFaces(200, 20, seed=0)
    pairs = MaskedPairDataset(ds, seed=0, flip=False)
    rows = [np.concatenate([ds[(k + 8) * 20][0] for k in range(8)], 1),
            np.concatenate([ds[(k + 16) * 20][0] for k in range(8)], 1),
            np.concatenate([ds[2 * 20 + k][0] for k in range(8)], 1),
            np.concatenate([pairs.sample(2 * 20 + k)[0] for k in range(8)], 1)]
    grid = Image.fromarray(np.concatenate(rows, 0))
    grid.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True)
    print(f"wrote {path}")


def stack(ds):
    return np.stack([ds[i][0] for i in range(len(ds))]), ds.labels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  python benchmarks/bench_synthetic.py --train-ids 150 --test-ids 60 "
                                       "--preview docs/synthetic_faces.png")
    p.add_argument("--train-ids", type=int, default=150)
    p.add_argument("--test-ids", type=int, default=60)
    p.add_argument("--per-id", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--preview", metavar="PNG", help="also write a preview grid of faces to this file")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    if args.preview:
        write_preview(args.preview)

    t_id, rate = speed(100, 20)
    print(f"identity setup: {t_id * 1e3:.2f} ms CPU; images/s on one core (identities cached): {rate:.0f}")

    tr = SyntheticFaces(args.train_ids, args.per_id, seed=args.seed)
    te = SyntheticFaces(args.test_ids, args.per_id, seed=args.seed, identity_offset=args.train_ids)
    xtr, ytr = stack(tr)
    xte, yte = stack(te)

    def hide(x):
        x = x.copy()
        x[:, 62:] = 128
        return x

    from insightface_g2d.masks.synthesizer import MaskSynthesizer

    synth = MaskSynthesizer()
    xtr_masked = synth.apply_batch(xtr, np.random.default_rng(1))[0]
    xte_masked = synth.apply_batch(xte, np.random.default_rng(2))[0]
    # Gallery = first half of each held-out identity's images (clean), probes = the rest (masked).
    gallery = gallery_split(yte)
    mixed = np.where(gallery[:, None, None, None], xte, xte_masked)

    rows = [
        ("whole face", xtr, xte, {}),
        ("upper face (rows 0-59)", xtr, xte, dict(view=lambda x: x[:, :60])),
        ("lower face (rows 60-111)", xtr, xte, dict(view=lambda x: x[:, 60:])),
        ("lower face hidden (rows 62+ grey)", xtr, xte, dict(view=hide)),
        ("masked probes, clean gallery (clean-trained)", xtr, mixed, {}),
        ("masked everywhere (masked-trained)", xtr_masked, xte_masked, {}),
    ]
    print(f"\nFisherfaces + nearest class mean, {args.train_ids} train ids -> {args.test_ids} held-out ids, "
          f"{args.per_id} images each (chance {1 / args.test_ids:.3f})")
    for name, train_x, test_x, kw in rows:
        print(f"  {name:46s} {region_identification(train_x, ytr, test_x, yte, **kw):.3f}")


if __name__ == "__main__":
    main()

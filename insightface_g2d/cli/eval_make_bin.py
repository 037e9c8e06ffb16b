"""`g2d-eval make-bin`: a verification `.bin` of pairs drawn from any face dataset.

Useful for held-out identities of your own data (or of the built-in synthetic faces) in the format
arcface_torch and every `g2d-eval` command read.
"""
import argparse

from ..data.factory import build_face_dataset
from ..evaluation.binfile import write_bin
from ..training.evaluate import load_pairs


def run(args):
    build_face_dataset(args.dataset, skip_bad=args.skip_bad)  # fail early, with the dataset's own message
    images, issame = load_pairs({"pairs": args.dataset, "num_pairs": args.pairs, "seed": args.seed},
                                skip_bad=args.skip_bad, option="--pairs")
    write_bin(args.out, images, issame, quality=args.quality)
    print(f"wrote {args.out}: {len(issame)} pairs ({int(issame.sum())} genuine) from {args.dataset}")
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser(
        "make-bin",
        help="draw distinct verification pairs (half genuine) from a face dataset and write a .bin",
        description=__doc__,
        epilog="example:\n  g2d-eval make-bin --dataset synthetic:ids=60,per_id=8,seed=2048,offset=100000 "
        "--pairs 600 --out heldout.bin\n  g2d-eval make-bin --dataset faces_rec --pairs 1000 --out faces_heldout.bin   "
        "# a RecordIO folder (g2d-data pack)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True,
                   help="dataset spec: synthetic[:...], a RecordIO folder or .rec, or an image folder")
    p.add_argument("--pairs", type=int, default=1000,
                   help="number of pairs, half genuine, all distinct (default 1000; refused when the dataset has "
                   "fewer distinct pairs, naming how many it has)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair draw (default 0)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument("--out", required=True, help="output .bin path")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out records whose header cannot be read, replace unreadable images by the next good one")
    p.set_defaults(func=run)

"""`g2d-eval make-pairs`: seeded clean-clean, masked-clean and masked-masked pairs files from a folder
of photos of people with and without masks (`root/<identity>/*`), for `g2d-eval pairs` and
`g2d-eval real-masks`.

Which photos are masked: --masked FOLDER (a second `<identity>/*` tree, as RMFD's
AFDB_masked_face_dataset beside AFDB_face_dataset), --masked 'GLOB' on paths relative to the root,
or --masked LIST.txt (one relative path per line). Pairs are balanced in every fold, distinct, and
the folds person-disjoint. Photos whose bytes appear under two identities are left out, and so are
byte-identical copies within one; --exclude leaves out more (augmented copies). The files and a
report of what was kept and dropped go to --out.
"""
import argparse
import os

from ..evaluation.photo_pairs import PROTOCOLS, collect_photos, draw_protocol_pairs, pairs_text
from ..evaluation.report import write_json, write_text
from ..fileio import write_errors

EXAMPLE = ("g2d-eval make-pairs --root RMFD/AFDB_face_dataset --masked RMFD/AFDB_masked_face_dataset "
           "--exclude '*_dark.*' --exclude '*_flip.*' --exclude '*_noise.*' --exclude '*_rotate*' "
           "--pairs 2000 --out rmfd_pairs")


def run(args):
    photo_set = collect_photos(args.root, args.masked, exclude=args.exclude or (),
                               drop_duplicates=not args.keep_duplicates)
    summary = photo_set.summary()
    root = str(photo_set.root)
    made = {}
    with write_errors(args.out):
        for protocol in args.protocols or PROTOCOLS:
            rows = draw_protocol_pairs(photo_set.photos, protocol, args.pairs, nfolds=args.folds, seed=args.seed)
            path = os.path.join(args.out, f"pairs_{protocol.replace('-', '_')}.txt")
            write_text(path, pairs_text(rows, protocol, root, args.seed, summary))
            genuine = sum(r[2] for r in rows)
            made[protocol] = dict(file=path, pairs=len(rows), genuine=genuine)
            short = "" if len(rows) >= args.pairs else f" (fewer than --pairs {args.pairs}: the photos hold no more)"
            print(f"{protocol}: {len(rows)} pairs ({genuine} genuine) -> {path}{short}")
        report = dict(root=root, seed=args.seed, folds=args.folds, masked=os.fspath(args.masked),
                      exclude=list(args.exclude or ()), summary=summary, protocols=made,
                      dropped={reason: sorted(paths) for reason, paths in photo_set.dropped.items()})
        write_json(os.path.join(args.out, "pairs_report.json"), report)
    print(f"photos kept: {summary['photos']} ({summary['masked']} masked, {summary['clean']} clean) of "
          f"{summary['identities']} identities ({summary['identities_with_both']} with both)")
    for reason, count in summary["dropped"].items():
        print(f"dropped: {count} photo(s), {reason}")
    print(f"image root for g2d-eval pairs / real-masks: --root {root}")
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser(
        "make-pairs",
        help="seeded clean-clean / masked-clean / masked-masked pairs files from photos of masked and unmasked people",
        description=__doc__,
        epilog=f"example:\n  {EXAMPLE}\n  g2d-eval make-pairs --root my_photos --masked '*/masked_*' --out my_pairs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", required=True, help="folder of root/<identity>/* photos (the unmasked ones, or all)")
    p.add_argument("--masked", required=True,
                   help="which photos are masked: a folder (<identity>/* masked photos), a glob on paths relative to "
                        "--root (quote it), or a text file listing relative paths")
    p.add_argument("--exclude", action="append", metavar="GLOB",
                   help="leave out photos whose relative path matches (repeatable), e.g. augmented copies '*_flip.*'")
    p.add_argument("--pairs", type=int, default=2000,
                   help="pairs per protocol, half genuine (default 2000; fewer when the photos hold fewer)")
    p.add_argument("--folds", type=int, default=10, help="person-disjoint folds (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of folds and pairs (default 0)")
    p.add_argument("--protocol", action="append", dest="protocols", choices=PROTOCOLS,
                   help="protocol(s) to write (default all three)")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="keep byte-identical photos (default: drop copies, and files filed under two identities)")
    p.add_argument("--out", required=True, help="output folder for pairs_<protocol>.txt and pairs_report.json")
    p.set_defaults(func=run)

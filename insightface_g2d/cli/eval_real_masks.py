"""`g2d-eval real-masks`: models on photos of people really wearing masks, end to end.

Each photo of the pairs files (`g2d-eval make-pairs`) is found and aligned once by the face finder
(the kit's masked-face front end by default), every model embeds the same crops, and the table gives
clean-clean, masked-clean and masked-masked accuracy with the share of the reference model's mask
gap each model recovers, and each model's paired difference from the reference (mean over folds of
the fold-accuracy difference, 95 % paired-t interval over the person-disjoint folds). Give
--pairs-dir several times (e.g. make-pairs --seed 0..4) to report each set and their pooled means. Photos the finder cannot place are counted and listed in align_report.tsv,
never dropped silently.
"""
import argparse
import sys

EXAMPLE = ("g2d-eval real-masks --root RMFD --pairs-dir rmfd_pairs --model teacher=dlib_resnet "
           "--model G2D=g2d_dlib:work_dirs/lfw/g2d_pretrained/model.pt --out results/rmfd")


def run(args):
    from ..devices import select_device
    from ..evaluation.model_spec import parse_model_arg
    from ..evaluation.real_masks import evaluate_real_masks, find_pairs_files

    if args.batch_size < 1:
        from ..errors import ConfigError

        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    models = [parse_model_arg(m) for m in args.model]
    sets = [find_pairs_files(d) for d in args.pairs_dir]
    doc = evaluate_real_masks(models, args.root, sets[0] if len(sets) == 1 else sets, detector=args.detector,
                              reference=args.reference, flip=args.flip, out_dir=args.out, unplaced=args.unplaced,
                              batch_size=args.batch_size, device=select_device(args.device),
                              progress=not args.quiet, log=lambda line: print(line, file=sys.stderr),
                              assume_cropped=args.assume_cropped)
    print(doc["markdown"])
    print(f"wrote {args.out}/real_masks.md, real_masks.json, real_masks_paired.tsv, align_report.tsv",
          file=sys.stderr)
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser(
        "real-masks",
        help="models on real masked photos end to end (front end -> crops -> accuracy, mask gap recovered)",
        description=__doc__,
        epilog=f"example:\n  {EXAMPLE}\n\nmodel: [LABEL=]NETWORK:CHECKPOINT, [LABEL=]model.onnx or [LABEL=]dlib_resnet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", required=True, help="image root the pairs files' paths are relative to "
                                                 "(make-pairs prints it)")
    p.add_argument("--pairs-dir", required=True, action="append", metavar="DIR",
                   help="folder with pairs_clean_clean.txt, pairs_masked_clean.txt, pairs_masked_masked.txt "
                        "(g2d-eval make-pairs --out); repeat for several pairs sets of the same photos (e.g. "
                        "--seed 0..4): each is reported and they are pooled")
    p.add_argument("--model", action="append", required=True, metavar="[LABEL=]SPEC", help="repeat for several")
    p.add_argument("--reference", default=None, metavar="LABEL",
                   help="model whose mask gap the shares and the paired differences are measured against "
                        "(default: the first --model)")
    p.add_argument("--detector", default="g2d", help="face finder: g2d (default), g2d:FOLDER, dlib or an SCRFD .onnx")
    p.add_argument("--assume-cropped", action="store_true",
                   help="every photo is one face crop (sets of tight crops): the g2d front end places it without a "
                        "detector")
    p.add_argument("--unplaced", default="resize", choices=("resize", "skip"),
                   help="photos the finder cannot place: use them resized whole (default) or leave their pairs out")
    p.add_argument("--flip", action="store_true", help="add each mirrored crop's embedding (default: no flip)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (the crops are kept there for reruns)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

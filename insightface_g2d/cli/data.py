"""`g2d-data`: from a folder of photos to training data (aligned faces, RecordIO, a .bin of pairs).

    g2d-data align --src photos/ --out faces112/          (masked-face front end; or --landmarks TSV, --detector dlib)
    g2d-data pack --src faces112/ --out faces_rec/                                 (train.rec + train.idx)
    g2d-data bin --root photos/ --pairs pairs.txt --landmarks landmarks5.tsv --out heldout.bin
    g2d-data check-landmarks --src photos/ --landmarks landmarks5.tsv --mask surgical --sample 300
    g2d-data train-landmarks --src photos/ --landmarks landmarks5.tsv --include train.txt --out front_end/
"""
import os
import sys

from .common import add_subcommand, exit_cli, make_parser, run_subcommand

LFW = "/data/lfw"
DETECTORS = ("'g2d' (the kit's masked-face front end: dlib's HOG + the kit's masked-face HOG filter + the kit's "
             "landmark network), 'g2d:DIR' (one made by g2d-data train-landmarks), 'dlib' (HOG detector + 68-point "
             "model; add --cnn-fallback for dlib's slow CNN detector) or an SCRFD det_*.onnx from an insightface "
             "model pack; g2d and dlib need pip install -e .[dlib]")


def _int_list(text):
    """'24,48,96,192' -> (24, 48, 96, 192) for argparse."""
    import argparse

    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers "
                                         "(example: 24,48,96,192)") from None


def _workers(n):
    return max(1, int(n if n is not None else min(4, os.cpu_count() or 1)))


def run_align(args):
    from ..faces.align_folder import align_folder

    s = align_folder(args.src, args.out, landmarks=args.landmarks, detector=args.detector, include=args.include,
                     exclude=args.exclude, workers=_workers(args.workers), size=args.size, fmt=args.format,
                     quality=args.quality, pick=args.pick, upsample=args.upsample, cnn_fallback=args.cnn_fallback,
                     det_size=args.det_size, progress=not args.quiet, refit=not args.no_refit,
                     assume_cropped=args.assume_cropped)
    parts = [f"{s['aligned']} faces aligned", f"{s['done_before']} already there"]
    if s["no_face"] or not args.landmarks:
        parts.append(f"{s['no_face']} without a face found")
    parts += [f"{s[k]} {what}" for k, what in (("too_small", "too small to hold a face"), ("unreadable", "unreadable"))
              if s[k]]
    lacking = s["failed"] - s["no_face"] - s["too_small"] - s["unreadable"]
    if lacking:
        parts.append(f"{lacking} without landmarks in the file")
    print(f"{args.out}: " + ", ".join(parts) + f" of {s['photos']} photos; every photo's outcome in {s['report']}, "
          f"the five points found in {s['landmarks']} (g2d-mask apply --input {args.src} --landmarks {s['landmarks']})")
    for rel, why in s["failures"][:5]:
        print(f"  not aligned: {rel}: {why}")
    if s["hint"]:
        print(f"  {s['no_face']} photo(s) without a face found: {s['hint']}")
    return 0


def run_pack(args):
    from ..data.pack import pack_folder

    s = pack_folder(args.src, args.out, size=args.size, quality=args.quality, force=args.force,
                    progress=not args.quiet)
    print(f"wrote {s['rec']} and {s['idx']}: {s['images']} faces of {s['identities']} identities "
          "(arcface_torch layout)")
    return 0


def run_bin(args):
    """The faces of a pairs list as a `.bin` (JPEG at --quality)."""
    import numpy as np

    from ..evaluation.bin_order import bin_pair_order, describe_order
    from ..evaluation.binfile import write_bin
    from ..evaluation.pairs import load_pair_images, read_pairs

    pairs = read_pairs(args.pairs, layout=args.layout, image_ext=args.image_ext)
    images = load_pair_images(args.root, pairs, args.landmarks, image_ext=args.image_ext, progress=not args.quiet,
                              resize=args.resize)
    order, exact = bin_pair_order(pairs.issame, pairs.folds)
    pick = np.stack([2 * order, 2 * order + 1], axis=1).reshape(-1)
    write_bin(args.out, images[pick], pairs.issame[order], quality=args.quality)
    for line in describe_order(order, exact):
        print(line, file=sys.stderr)
    print(f"wrote {args.out}: {len(pairs)} pairs ({int(pairs.issame.sum())} genuine) from {args.pairs}")
    return 0


def run_check_landmarks(args):
    from ..faces.align_folder import landmark_agreement

    r = landmark_agreement(args.src, args.landmarks, detector=args.detector, sample=args.sample, seed=args.seed,
                           pick=args.pick, upsample=args.upsample, cnn_fallback=args.cnn_fallback,
                           det_size=args.det_size, workers=_workers(args.workers), progress=not args.quiet,
                           mask=args.mask)
    masked = "" if not args.mask else ", wearing masks of random styles" if args.mask == "random" else \
        f", wearing {args.mask} masks"
    print(f"{args.detector} vs {args.landmarks} on {r['sample']} photos (seed {args.seed}{masked}): "
          f"{r['detected']} detected; error in inter-ocular units: median {r['median']:.4f}, "
          f"90th percentile {r['p90']:.4f}, share above 0.1: {100 * r['share_above_0_1']:.1f}%")
    for rel, why in r["misses"][:5]:
        print(f"  not found: {rel}: {why}")
    return 0


def run_train_landmarks(args):
    from ..faces.landmark_training import train_front_end

    s = train_front_end(args.src, args.landmarks, args.out, include=args.include, limit=args.limit,
                        hog_photos=args.hog_photos, mine_photos=args.mine_photos, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=not args.quiet,
                        reuse_hog=args.reuse_hog, yaw_weight=args.yaw_weight, hidden=args.hidden,
                        widths=args.widths)
    print(f"wrote the masked-face front end to {s['out']}: HOG filter from {s['hog_photos']} masked photos, "
          f"landmark network from {s['photos']} photos; use it with g2d-data align --detector g2d:{s['out']}")
    return 0


def _detector_options(p, default_pick="largest"):
    p.add_argument("--pick", choices=("largest", "center"), default=default_pick,
                   help=f"which face of a photo with several: the largest or the one nearest the centre "
                   f"(default {default_pick})")
    p.add_argument("--upsample", type=int, default=1, help="g2d, dlib: upsample the photo N times before detecting "
                   "(1 finds faces down to about 40 px; default 1)")
    p.add_argument("--cnn-fallback", action="store_true",
                   help="dlib: when the HOG detector finds no face, try dlib's CNN detector (slow on CPU)")
    p.add_argument("--det-size", type=int, default=640, help="SCRFD: detector input size (default 640)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes running the detector (default: min(4, CPU cores))")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser():
    parser = make_parser(
        "g2d-data",
        "Prepare training and evaluation data from a folder of photos root/<identity>/<photo>: aligned "
        "112x112 faces on the ArcFace template, RecordIO in arcface_torch's layout, a .bin of pairs.",
        f"g2d-data align --src {LFW}/lfw-deepfunneled --landmarks {LFW}/landmarks5.tsv "
        f"--include {LFW}/peopleDevTrain.txt --out faces112\n"
        "  g2d-data pack --src faces112 --out faces_rec && g2d-train recipes/configs/demo.py --set rec=faces_rec "
        "--set num_classes=None",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = add_subcommand(
        sub, "align", "align photos src/<identity>/* to 112x112 faces out/<identity>/<stem>.jpg",
        f"g2d-data align --src {LFW}/lfw-deepfunneled --landmarks {LFW}/landmarks5.tsv "
        f"--include {LFW}/peopleDevTrain.txt --out faces112\n"
        "  g2d-data align --src my_photos --workers 2 --out my_faces112     # the masked-face front end",
        description="Find five landmarks in every photo of src/<identity>/*, warp the face onto the ArcFace "
        "five-point template and write it to out/<identity>/<photo stem>.<format> (each file written "
        "atomically). Without --landmarks the faces are found by the kit's masked-face front end (--detector "
        "g2d: dlib's HOG detector and the kit's HOG filter for masked faces, then the kit's five-point "
        "landmark network, refitted by dlib's 68-point model where a face is clear and unmasked; needs the "
        "[dlib] extra; --assume-cropped when every photo is already one face crop). out/align_report.tsv lists every photo: aligned or not, "
        "the confidence, how many faces were seen, which was picked (--pick) and why a photo was skipped "
        "(no face found, too small to hold a face, unreadable); out/landmarks5.tsv holds the five points each "
        "face was aligned with, in the photo's pixels (for g2d-mask apply --input SRC --landmarks "
        "OUT/landmarks5.tsv). Each worker runs on one thread. A photo without a face found is never "
        "written. A re-run skips faces already written, so an interrupted run continues where it stopped. "
        "The output is an image folder every g2d command reads as a dataset (and `g2d-data pack` turns "
        "into RecordIO).")
    p.add_argument("--src", required=True, metavar="DIR", help="photos, one sub-folder per identity")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder of aligned faces")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--landmarks", metavar="TSV", help="five landmarks per photo, landmarks5.tsv format "
                        "(path x1 y1 ... x5 y5, paths relative to --src)")
    source.add_argument("--detector", metavar="g2d|g2d:DIR|dlib|DET.onnx",
                        help=f"find the landmarks: {DETECTORS} (default g2d)")
    p.add_argument("--include", metavar="LIST", help="only these identities (one per line, or name<TAB>count "
                   "as LFW's peopleDevTrain.txt)")
    p.add_argument("--exclude", metavar="LIST", help="leave these identities out (same format)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="output format (default jpg)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument("--size", type=int, default=112, help="face size (default 112)")
    _detector_options(p)
    p.add_argument("--assume-cropped", action="store_true",
                   help="g2d: every photo is already one face crop (the face fills 70-100 %% of it, as masked-face "
                   "data sets ship them): no detector runs, the face is placed in the whole photo and always returned")
    p.add_argument("--no-refit", action="store_true",
                   help="g2d: keep the landmark network's points, without the refit by dlib's 68-point model on "
                   "clear, unmasked faces (that model's training data, iBUG 300-W, allows no commercial use)")
    p.set_defaults(func=run_align)

    p = add_subcommand(
        sub, "pack", "pack an aligned image folder into train.rec + train.idx (arcface_torch's layout, no mxnet)",
        "g2d-data pack --src faces112 --out faces_rec   # faces_rec/train.rec, train.idx, property",
        description="Write the faces of an aligned image folder src/<identity>/<face> as RecordIO in "
        "arcface_torch's layout: record 0 a header [first identity record, end], images 1..N labelled "
        "with their identity's number (identities numbered in sorted folder order), then one record per "
        "identity [first image, end). JPEG and PNG bytes are stored unchanged. Readable by arcface_torch's "
        "MXFaceDataset, mxnet, and every g2d command.")
    p.add_argument("--src", required=True, metavar="DIR", help="aligned faces, one sub-folder per identity")
    p.add_argument("--out", required=True, metavar="DIR_OR_REC",
                   help="output folder (gets train.rec, train.idx, property) or a .rec path")
    p.add_argument("--size", type=int, default=112, help="face size every image must have (default 112)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality for images that are not JPEG/PNG")
    p.add_argument("--force", action="store_true", help="overwrite an existing .rec")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_pack)

    p = add_subcommand(
        sub, "bin", "write the faces of a pairs list (LFW pairs.txt, pairsDevTest.txt, ...) as a .bin",
        f"g2d-data bin --root {LFW}/lfw-deepfunneled --pairs {LFW}/pairsDevTest.txt "
        f"--landmarks {LFW}/landmarks5.tsv --out lfw_devtest.bin",
        description="Read the images of a pairs list (LFW layout, or 'path1 path2 label' lines), align them "
        "with the landmarks file, and write an insightface .bin verification set (JPEG) for g2d-eval "
        "verify/compare, config.eval.pairs and arcface_torch's val_targets.")
    p.add_argument("--root", required=True, metavar="DIR", help="folder holding the images (or its parent)")
    p.add_argument("--pairs", required=True, metavar="FILE", help="pairs file")
    p.add_argument("--landmarks", metavar="TSV", help="landmarks to align with (omit for aligned 112x112 faces)")
    p.add_argument("--resize", action="store_true",
                   help="without --landmarks: the images are aligned crops of another size; resize them")
    p.add_argument("--layout", default="auto", choices=("auto", "lfw", "generic"), help="pairs file layout")
    p.add_argument("--image-ext", default=None, help="extension for LFW-layout names (default: found on disk)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument("--out", required=True, metavar="BIN", help="output .bin")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_bin)

    p = add_subcommand(
        sub, "check-landmarks", "measure a detector's five points against a landmarks file",
        f"g2d-data check-landmarks --src {LFW}/lfw-deepfunneled --landmarks {LFW}/landmarks5.tsv "
        "--sample 300 --mask surgical",
        description="Run the detector on a random sample of the photos of a landmarks file (optionally wearing "
        "synthetic masks, --mask) and print the error of its five points in inter-ocular units (distance "
        "between the file's eye centres): median, 90th percentile, and the share of photos above 0.1.")
    p.add_argument("--src", required=True, metavar="DIR", help="folder the landmarks file's paths are relative to")
    p.add_argument("--landmarks", required=True, metavar="TSV", help="reference landmarks")
    p.add_argument("--detector", default="g2d", metavar="g2d|g2d:DIR|dlib|DET.onnx",
                   help=f"detector to check: {DETECTORS} (default g2d)")
    p.add_argument("--mask", metavar="STYLE", default=None,
                   help="draw a synthetic mask of this style (or 'random') on each photo from its landmarks before "
                   "detecting, to measure the detector on masked faces (seeded by --seed and the path)")
    p.add_argument("--sample", type=int, default=200, help="photos to check (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    _detector_options(p, default_pick="center")
    p.set_defaults(func=run_check_landmarks)

    p = add_subcommand(
        sub, "train-landmarks", "train the masked-face front end (HOG filter + landmark network) on photos with "
        "true landmarks",
        f"g2d-data train-landmarks --src {LFW}/lfw-deepfunneled --landmarks {LFW}/landmarks5.tsv "
        f"--include {LFW}/peopleDevTrain.txt --out my_front_end",
        description="Train the front end `--detector g2d` uses, from photos src/<identity>/* and their true five "
        "landmarks: a dlib HOG filter for masked faces (the photos wearing synthetic masks of the training styles "
        "surgical, kn95, cloth, patterned) and the five-point landmark network (masked and clean faces, jittered "
        "views, hard negatives mined from the detectors). Writes masked_hog.svm, landmarks.pt and front_end.json "
        "(the training settings) into --out. Runs on the CPU, one thread; the shipped files took about an hour "
        "on LFW DevTrain.")
    p.add_argument("--src", required=True, metavar="DIR", help="photos, one sub-folder per identity")
    p.add_argument("--landmarks", required=True, metavar="TSV", help="their true five landmarks (landmarks5.tsv format)")
    p.add_argument("--include", metavar="LIST", help="only these identities (train on training people only)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--limit", type=int, default=None, help="use at most N photos (random, seeded)")
    p.add_argument("--hog-photos", type=int, default=2500, help="masked photos for the HOG filter (default 2500)")
    p.add_argument("--mine-photos", type=int, default=2000,
                   help="photos the detectors run on for box calibration and hard negatives (default 2000)")
    p.add_argument("--epochs", type=int, default=24, help="passes over the photos (default 24)")
    p.add_argument("--batch-size", type=int, default=64, help="photos per step (default 64)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--reuse-hog", action="store_true",
                   help="keep the masked HOG filter already in --out; train the landmark network anew")
    p.add_argument("--yaw-weight", type=float, default=0.0,
                   help="draw each photo in proportion to 1 + W x its head turn (|nose - eye midpoint| / eye "
                   "distance), so turned heads are seen more often (default 0: every photo once an epoch)")
    p.add_argument("--hidden", type=int, default=128, help="width of the network's hidden layer (default 128)")
    p.add_argument("--widths", type=_int_list, default=None, metavar="A,B,C,D",
                   help="channels of the network's four convolution stages (default 16,32,64,128; 24,48,96,192 "
                   "has about 2x the parameters, takes about 1.5x as long to train and 1.13x as long a photo "
                   "to align)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train_landmarks)
    return parser


def main(argv=None):
    return run_subcommand(build_parser(), argv)


def entry():
    exit_cli(main)


if __name__ == "__main__":
    entry()

"""`g2d-eval verify | write-masked-bin | pairs`: verification on .bin sets and pair lists."""
import argparse
import sys

EPILOG_VERIFY = """example:
  g2d-eval verify --model g2d:work_dirs/g2d/model.pt --bin faces_emore/lfw.bin \\
      --protocol clean --protocol masked-masked --protocol masked-clean --json lfw.json

model specs: NETWORK:CHECKPOINT (e.g. r100:ms1mv3_arcface_r100_fp16/backbone.pth),
  NETWORK:random (random weights, smoke tests), model.onnx, or dlib (any type of embedders.registry)
units: "accuracy threshold" is the squared distance of L2-normalised embeddings (0..4, same when
  below), printed with its cosine equivalent; TAR@FAR, --scores and --write-thresholds use cosine
protocols: clean, masked-masked, masked-clean, style:<mask style> (e.g. style:n95)"""

EPILOG_WRITE = """example:
  g2d-eval write-masked-bin --bin faces_emore/lfw.bin --out masked/lfw_mm.bin --protocol masked-masked --seed 0"""

EPILOG_PAIRS = """examples:
  g2d-eval pairs --model r50:backbone.pth --root lfw --pairs lfw/pairs.txt --landmarks lfw/landmarks5.tsv \\
      --protocol clean --protocol masked-masked
  g2d-eval pairs --model g2d:model.pt --root mlfw/aligned --pairs mlfw/pairs.txt   # already aligned
  g2d-eval pairs --model g2d:model.pt --root photos --pairs mine.txt --detector g2d \
      --scores scores.tsv --write-thresholds model.thresholds.json

units: "accuracy threshold" is the squared distance of L2-normalised embeddings (0..4, same when
below), printed with its cosine equivalent; --scores and --write-thresholds are cosine similarity
(-1..1, same person when score >= threshold). With fewer pairs than --nfolds, accuracy is
leave-one-out (a note says so)."""


def _common(p, protocols=True):
    p.add_argument("--model", required=True,
                   help="NETWORK:CHECKPOINT, NETWORK:random (random weights), file.onnx, dlib or dlib_resnet")
    if protocols:
        p.add_argument("--protocol", action="append", default=None,
                       help="evaluation protocol; repeat for several (default: clean)")
        p.add_argument("--seed", type=int, default=0, help="mask synthesis seed (default 0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-flip", action="store_true", help="do not add the mirrored face's embedding")
    p.add_argument("--nfolds", type=int, default=10)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default auto)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--roc", action="store_true", help="include the ROC curve in the JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(subparsers):
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("verify", help="accuracy/TAR@FAR of a model on insightface .bin sets",
                              description="1:1 verification on insightface .bin sets (lfw.bin, cfp_fp.bin, ...) "
                              "under clean and synthetic-mask protocols; accuracy as arcface_torch.",
                              epilog=EPILOG_VERIFY, formatter_class=fmt)
    _common(p)
    p.add_argument("--bin", action="append", required=True, metavar="PATH",
                   help="verification .bin file; repeat for several")
    p.set_defaults(func=run_verify)

    p = subparsers.add_parser("write-masked-bin", help="write a .bin with synthetic masks applied",
                              description="Apply a masking protocol to a .bin and save it as a new .bin "
                              "(readable by arcface_torch and any insightface tool).",
                              epilog=EPILOG_WRITE, formatter_class=fmt)
    p.add_argument("--bin", required=True, metavar="SRC", help="source .bin")
    p.add_argument("--out", required=True, metavar="DST", help="output .bin")
    p.add_argument("--protocol", default="masked-masked", help="masked-masked (default), masked-clean, style:<name>")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of masked faces (default 95)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_write_masked_bin)

    p = subparsers.add_parser("pairs", help="verification on an image folder + pairs list (LFW, MLFW, MFR2)",
                              description="1:1 verification on image folders with a pairs file: LFW layout "
                              "(pairs.txt, pairsDev*.txt, MFR2) or 'path1 path2 label [fold]' lines (MLFW, others).",
                              epilog=EPILOG_PAIRS, formatter_class=fmt)
    _common(p)
    p.add_argument("--root", required=True, help="folder holding the images (or its parent)")
    p.add_argument("--pairs", required=True, help="pairs file")
    p.add_argument("--landmarks", help="landmarks TSV (path x1 y1 ... x5 y5) to align with; "
                   "omit when the images are already aligned 112x112 crops")
    p.add_argument("--resize", action="store_true",
                   help="without --landmarks: the images are aligned crops of another size; resize them to 112x112 "
                   "(other sizes are refused otherwise)")
    p.add_argument("--detector", metavar="g2d|g2d:DIR|dlib|DET.onnx", default=None,
                   help="unaligned photos without a landmarks file: find and align each face with this finder "
                   "('g2d', the kit's masked-face front end; 'dlib'; an SCRFD .onnx; see g2d-data align --help); "
                   "photos where none is found are used resized whole, and counted")
    p.add_argument("--layout", default="auto", choices=("auto", "lfw", "generic"))
    p.add_argument("--image-ext", default=None, help="extension for LFW-layout names (default: found on disk)")
    p.add_argument("--name", help="name in the output (default: the pairs file's name, or its folder's for "
                   "a pairs*.txt, e.g. lfw; as g2d-eval compare names targets)")
    p.add_argument("--max-pairs-per-fold", type=int, default=None, metavar="N",
                   help="quick run: first N/2 matched and N/2 mismatched pairs of each fold")
    p.add_argument("--scores", metavar="TSV", help="write each pair's score (cosine similarity of the normalised "
                   "embeddings, -1..1) per protocol: path1, path2, same, protocol, score")
    p.add_argument("--write-thresholds", metavar="JSON",
                   help="write the thresholds at FAR 1e-2/1e-3/1e-4 (where measurable) and of best accuracy, in "
                   "cosine units, as a thresholds file that FaceRecognizer and g2d-face read (e.g. beside the "
                   "model: model.thresholds.json)")
    p.set_defaults(func=run_pairs)


def _check(args, protocols):
    from ..errors import ConfigError
    from ..evaluation.protocols import parse_protocol

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.nfolds < 2:
        raise ConfigError(f"--nfolds must be at least 2, got {args.nfolds}")
    for p in protocols:
        parse_protocol(p)


def _print_results(title, results):
    from ..evaluation.verification import format_metrics

    for protocol, metrics in results.items():
        print(f"{title} [{protocol}]: {format_metrics(metrics)}")


def _write_json(path, payload):
    from ..evaluation.report import write_json

    write_json(path, payload)
    print(f"wrote {path}", file=sys.stderr)


def _json_results(results, include_roc):
    from ..evaluation.verification import metrics_to_json

    return {p: metrics_to_json(m, include_roc) for p, m in results.items()}


def run_verify(args):
    from ..devices import select_device
    from ..embedders.factory import build_embedder
    from ..evaluation.compare import target_name
    from ..evaluation.binfile import load_bin
    from ..evaluation.engine import evaluate_protocols

    protocols = args.protocol or ["clean"]
    _check(args, protocols)
    embedder = build_embedder(args.model, device=select_device(args.device))
    payload = {"model": args.model, "seed": args.seed, "flip": not args.no_flip, "targets": {}}
    for path in args.bin:
        name = target_name(path)
        images, issame = load_bin(path)
        results = evaluate_protocols(embedder, images, issame, protocols, seed=args.seed,
                                     batch_size=args.batch_size, flip=not args.no_flip, nfolds=args.nfolds,
                                     progress=not args.quiet, name=name)
        _print_results(name, results)
        payload["targets"][name] = _json_results(results, args.roc)
    if args.json:
        _write_json(args.json, payload)
    return 0


def run_write_masked_bin(args):
    from ..evaluation.protocols import parse_protocol, write_masked_bin

    parse_protocol(args.protocol)
    info = write_masked_bin(args.bin, args.out, args.protocol, seed=args.seed, quality=args.quality,
                            progress=not args.quiet)
    print(f"wrote {args.out}: {info['num_pairs']} pairs, {info['num_masked']} masked faces "
          f"(protocol {info['protocol']}, seed {info['seed']})")
    return 0


def run_pairs(args):
    from ..devices import select_device
    from ..embedders.factory import build_embedder
    from ..evaluation.compare import target_name
    from ..evaluation.pairs import evaluate_pairs, read_pairs

    protocols = args.protocol or ["clean"]
    _check(args, protocols)
    pairs = read_pairs(args.pairs, layout=args.layout, image_ext=args.image_ext, nfolds=args.nfolds)
    if args.max_pairs_per_fold:
        pairs = pairs.take_per_fold(args.max_pairs_per_fold)
    embedder = build_embedder(args.model, device=select_device(args.device))
    results = evaluate_pairs(embedder, args.root, pairs, landmarks=args.landmarks, protocols=protocols,
                             seed=args.seed, batch_size=args.batch_size, flip=not args.no_flip,
                             nfolds=args.nfolds, image_ext=args.image_ext, progress=not args.quiet,
                             resize=args.resize, detector=args.detector)
    name = args.name or target_name(args.pairs)
    _print_results(name, results)
    if args.scores:
        from ..evaluation.pair_scores import write_pair_scores

        write_pair_scores(args.scores, pairs.paths, results)
        print(f"wrote {args.scores} (scores: cosine similarity, -1..1)", file=sys.stderr)
    if args.write_thresholds:
        from ..evaluation.thresholds import measured_set, thresholds_document, write_thresholds

        sets = [measured_set(m["scores"], m["issame"], name, protocol, flip=not args.no_flip)
                for protocol, m in results.items()]
        write_thresholds(args.write_thresholds, thresholds_document(sets, model=args.model))
        print(f"wrote {args.write_thresholds} (thresholds: cosine similarity, same when score >= threshold)",
              file=sys.stderr)
    if args.json:
        _write_json(args.json, {"model": args.model, "pairs": args.pairs, "root": args.root,
                                "seed": args.seed, "flip": not args.no_flip,
                                "targets": {name: _json_results(results, args.roc)}})
    return 0

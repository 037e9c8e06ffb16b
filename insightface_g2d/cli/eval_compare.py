"""`g2d-eval compare | ijb | export-onnx`: model comparison tables, IJB-B/C 1:1, ONNX export."""
import argparse
import os
import sys

EPILOG_COMPARE = """example:
  g2d-eval compare --model G2D=g2d:work_dirs/g2d/model.pt \\
      --model ArcFace-r50=r50:ms1mv3_arcface_r50_fp16/backbone.pth --model mbf.onnx \\
      --target faces_emore/lfw.bin --target faces_emore/cfp_fp.bin \\
      --protocol clean --protocol masked-masked --protocol masked-clean --out results/compare
  g2d-eval compare --model g2d:model.pt --target lfw=pairs:lfw/pairs.txt,root=lfw/lfw-deepfunneled,landmarks=lfw/landmarks5.tsv \\
      --target mlfw=pairs:mlfw/pairs.txt,root=mlfw/aligned --out results/pairs

writes OUT/compare.md (tables), OUT/compare.json (all numbers), OUT/roc_<target>.png, and each
model's decision thresholds (cosine, at FAR 1e-2/1e-3/1e-4 where measurable, and of best accuracy):
OUT/thresholds_<label>.json, and <stem>.thresholds.json beside the model file when its folder is
writable (FaceRecognizer and g2d-face read it there)
model: [LABEL=]NETWORK:CHECKPOINT, [LABEL=]model.onnx or [LABEL=]dlib (label defaults to the spec)
protocols: clean, masked-masked, masked-clean, style:<mask style> (default: the first three)"""

EPILOG_IJB = """example:
  g2d-eval ijb --model g2d:work_dirs/g2d/model.pt --root IJB_release/IJBC --dataset IJBC --out results/ijbc
  g2d-eval ijb --model g2d:work_dirs/g2d/model.pt --root IJB_release/IJBC --mask-probe --out results/ijbc_masked

ROOT holds meta/ijbc_face_tid_mid.txt, meta/ijbc_template_pair_label.txt, meta/ijbc_name_5pts_score.txt
and loose_crop/ (insightface's IJB release). --mask-probe masks every image of the templates that appear
second in a pair (--mask-select t2) or of a seeded half of all templates (--mask-select half)."""

EPILOG_ONNX = """example:
  g2d-eval export-onnx --network g2d --checkpoint work_dirs/g2d/model.pt --out g2d.onnx --check

the file loads with insightface.model_zoo.get_model('g2d.onnx') as a recognition model (ArcFaceONNX)"""


def _positive(name, value):
    from ..errors import ConfigError

    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")


def add_parser(subparsers):
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("compare", help="tables of several models x targets x masking protocols",
                              description="Evaluate several models on the same verification sets and masking "
                              "protocols (every model sees the same masked faces); write a markdown table, "
                              "a JSON file and ROC curves.", epilog=EPILOG_COMPARE, formatter_class=fmt)
    p.add_argument("--model", action="append", required=True, metavar="[LABEL=]SPEC",
                   help="model to compare; repeat for several")
    p.add_argument("--target", action="append", required=True, metavar="TARGET",
                   help="[NAME=]file.bin or [NAME=]pairs:PAIRS_FILE,root=DIR[,landmarks=TSV]; repeat for several")
    p.add_argument("--protocol", action="append", default=None, help="masking protocol; repeat for several")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="mask synthesis seed (default 0)")
    p.add_argument("--far", action="append", default=None, metavar="FAR",
                   help="FAR of the TAR table; repeat for several (default 1e-3)")
    p.add_argument("--roc-target", default=None, metavar="NAME", help="target whose ROC is plotted (default: first)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--nfolds", type=int, default=10)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-flip", action="store_true",
                   help="embed each face alone (default: plus its mirror image, as arcface_torch does)")
    p.set_defaults(func=run_compare)

    p = subparsers.add_parser("ijb", help="IJB-B / IJB-C 1:1 template verification (TAR@FAR)",
                              description="IJB-B/C 1:1 verification as arcface_torch's eval_ijbc.py (flip test, "
                              "faceness weighting, media-then-template pooling), optionally with masked probes.",
                              epilog=EPILOG_IJB, formatter_class=fmt)
    p.add_argument("--model", action="append", required=True, metavar="[LABEL=]SPEC",
                   help="NETWORK:CHECKPOINT or model.onnx; repeat to compare several")
    p.add_argument("--root", required=True, help="IJB folder holding meta/ and loose_crop/")
    p.add_argument("--dataset", default="IJBC", type=str.upper, choices=("IJBC", "IJBB"))
    p.add_argument("--mask-probe", action="store_true", help="mask the probe templates' images")
    p.add_argument("--mask-select", default="t2", choices=("t2", "half"),
                   help="probe templates: t2 = second template of each pair (default), half = seeded half")
    p.add_argument("--mask-style", action="append", default=None, metavar="STYLE",
                   help="restrict masks to these styles (default: every style but those made for experiments)")
    p.add_argument("--faceness", action=argparse.BooleanOptionalAction, default=True,
                   help="weight image features by the detector score (default on, as eval_ijbc.py)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write ijb_<dataset>.md/.json, the ROC PNG and the pair scores (.npy) here")
    p.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=4, help="image decoding processes (default 4)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_ijb)

    p = subparsers.add_parser("export-onnx", help="export a backbone to ONNX (insightface model-zoo compatible)",
                              description="Export a network + checkpoint to ONNX with a dynamic batch axis; "
                              "input [batch, 3, 112, 112] RGB in [-1, 1] as arcface_torch's torch2onnx.",
                              epilog=EPILOG_ONNX, formatter_class=fmt)
    p.add_argument("--network", required=True, help="network name (g2d, g2d_s, r50, mbf, ...)")
    p.add_argument("--checkpoint", required=True, help="backbone state dict (model.pt, backbone.pth)")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--num-features", type=int, default=None, help="embedding size (default: read from checkpoint)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--check", action="store_true",
                   help="compare onnxruntime (batch 1 and 3) and insightface's model zoo with torch")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="--check fails above tolerance x max(1, max |embedding|) (default 1e-4)")
    p.set_defaults(func=run_export_onnx)


def run_compare(args):
    from ..devices import select_device
    from ..evaluation.compare import DEFAULT_PROTOCOLS, compare, compare_markdown, parse_far
    from ..evaluation.model_spec import parse_model_arg

    _positive("--batch-size", args.batch_size)
    models = [parse_model_arg(m) for m in args.model]
    fars = [parse_far(f) for f in args.far] if args.far else [1e-3]
    doc = compare(models, args.target, protocols=args.protocol or DEFAULT_PROTOCOLS, seed=args.seed, flip=not args.no_flip,
                  batch_size=args.batch_size, device=select_device(args.device), out_dir=args.out,
                  roc_target=args.roc_target, nfolds=args.nfolds, table_fars=fars, progress=not args.quiet)
    print(compare_markdown(doc))
    for path in doc["files"].values():
        print(f"wrote {path}", file=sys.stderr)
    return 0


def run_ijb(args):
    from ..devices import select_device
    from ..evaluation.ijb import evaluate_ijb, ijb_markdown, read_ijb_meta
    from ..fileio import write_errors
    from ..evaluation.model_spec import parse_model_arg, unique_labels

    _positive("--batch-size", args.batch_size)
    models = [parse_model_arg(m) for m in args.model]
    unique_labels([label for label, _ in models])
    meta = read_ijb_meta(args.root, args.dataset)
    rows, curves = [], []
    for label, spec in models:
        r = evaluate_ijb(spec, args.root, args.dataset, faceness=args.faceness, mask_probe=args.mask_probe,
                         mask_select=args.mask_select, mask_styles=args.mask_style, seed=args.seed,
                         batch_size=args.batch_size, device=select_device(args.device),
                         num_workers=max(0, args.workers),
                         progress=not args.quiet, meta=meta)
        rows.append((label, r))
        curves.append((label, r["roc"][0], r["roc"][1]))
    table = ijb_markdown(rows)
    print(table)
    if args.out:
        with write_errors(args.out):
            written = _write_ijb_outputs(args, models, rows, curves, table)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _write_ijb_outputs(args, models, rows, curves, table):
    from ..evaluation import report

    stem = f"ijb_{args.dataset.lower()}" + ("_masked" if args.mask_probe else "")
    written = [report.write_text(os.path.join(args.out, stem + ".md"), table),
               report.plot_roc(curves, os.path.join(args.out, stem + "_roc.png"), title=f"ROC on {args.dataset}")]
    payload = dict(models=[dict(label=label, spec=spec) for label, spec in models], results={})
    for (label, r), (_, spec) in zip(rows, models):
        scores_path = report.write_npy(os.path.join(args.out, f"{stem}_{_safe(label)}_scores.npy"), r["scores"])
        written.append(scores_path)
        fpr, tpr = r["roc"]
        payload["results"][label] = dict({k: v for k, v in r.items() if k not in ("scores", "roc")},
                                         roc=dict(fpr=fpr, tpr=tpr), scores_file=scores_path)
    written.insert(1, report.write_json(os.path.join(args.out, stem + ".json"), payload))
    return written


def _safe(label):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]


def run_export_onnx(args):
    from ..evaluation.onnx_export import export_checkpoint

    info = export_checkpoint(args.network, args.checkpoint, args.out, num_features=args.num_features,
                             opset=args.opset, check=args.check, tolerance=args.tolerance)
    print(f"wrote {info['path']} ({args.network}, opset {args.opset}, input input.1 [batch, 3, 112, 112])")
    if args.check:
        par, zoo = info["parity"], info["insightface"]
        per_batch = ", ".join(f"batch {b}: {d:.2e}" for b, d in par["per_batch"].items())
        print(f"onnxruntime vs torch: max abs diff {par['max_abs_diff']:.2e} ({per_batch}; "
              f"max |embedding| {par['max_abs_ref']:.3g}, dim {par['output_dim']}; "
              f"L2-normalised: {par['max_abs_diff_l2']:.2e})")
        print(f"insightface.model_zoo.get_model -> {zoo['model_class']} (input mean {zoo['input_mean']}, "
              f"std {zoo['input_std']}, shape {zoo['input_shape']}); get_feat(BGR) vs torch(RGB): "
              f"max abs diff {zoo['max_abs_diff']:.2e}")
    return 0

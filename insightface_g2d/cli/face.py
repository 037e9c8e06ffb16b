"""`g2d-face`: use a trained model on photos (insightface_g2d.FaceRecognizer on the command line).

    g2d-face verify masked.jpg id_photo.jpg                       same person or not
    g2d-face enroll --gallery people/ --out gallery.npz           people/<identity>/*.jpg -> gallery
    g2d-face search --gallery gallery.npz probe1.jpg probe2.jpg   who is it (or "unknown")
    g2d-face export --model g2d_lfw --out g2d_lfw_bundle          a bundle that runs without PyTorch

Scores are cosine similarities of the normalised embeddings (-1..1), same person when score >=
threshold; the threshold comes from the model's thresholds file (--threshold picks one by name).
"""
import json
import math
import os
import sys

from .common import add_subcommand, make_parser, run_cli, run_subcommand

DEFAULT_MODEL = "dlib"
MODELS = ("a g2d-train run folder, NETWORK:CHECKPOINT, model.onnx, a bundle folder (g2d-face export), g2d_lfw (the "
          "ready masked-face model), dlib or dlib_resnet (dlib's ResNet, the default; needs pip install -e .[dlib])")


def _add_common(p):
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"the face model: {MODELS}")
    p.add_argument("--detector", default="g2d", metavar="g2d|g2d:DIR|dlib|DET.onnx",
                   help="face finder (default g2d, the kit's masked-face front end)")
    p.add_argument("--thresholds", metavar="JSON", help="thresholds file (default: the one beside the model)")
    p.add_argument("--threshold", metavar="NAME|COSINE",
                   help="threshold by name from the thresholds file (far=1e-3, the default; far=1e-2, best-accuracy, "
                   "clean:far=1e-3, ...) or a cosine value")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, auto (default cpu)")
    p.add_argument("--flip", choices=("yes", "no"), default=None,
                   help="add the mirror image's embedding (default: as the model's thresholds were measured, "
                   "else yes)")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts) instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser():
    parser = make_parser("g2d-face", "Use a face model on photos: verify two photos, enroll a gallery, search it. "
                         "Scores are cosine similarities (-1..1); same person when score >= threshold.",
                         "g2d-face verify masked.jpg id_photo.jpg")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = add_subcommand(sub, "verify", "are the people of two photos the same person",
                       "g2d-face verify masked.jpg id_photo.jpg --model work_dirs/lfw/g2d_pretrained "
                       "--threshold far=1e-3")
    p.add_argument("photos", nargs=2, metavar="PHOTO", help="two photos (the largest face of each is compared)")
    _add_common(p)
    p.set_defaults(func=run_verify)

    p = add_subcommand(sub, "enroll", "embed a folder of people's photos into a gallery file",
                       "g2d-face enroll --gallery people/ --out gallery.npz",
                       description="Embed the photos of DIR/<identity>/* (one or more per identity, masked or not) "
                       "into a gallery file (.npz). Writes OUT's <stem>.report.tsv: which photos had a face.")
    p.add_argument("--gallery", required=True, metavar="DIR", help="folder of identity sub-folders of photos")
    p.add_argument("--out", required=True, metavar="NPZ", help="gallery file to write")
    _add_common(p)
    p.set_defaults(func=run_enroll)

    p = add_subcommand(sub, "search", "who in a gallery is in each photo (open set: unknown under the threshold)",
                       "g2d-face search --gallery gallery.npz probe1.jpg probe2.jpg --top-k 3")
    p.add_argument("--gallery", required=True, metavar="NPZ", help="gallery file written by g2d-face enroll")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="probe photos")
    p.add_argument("--top-k", type=int, default=3, help="identities listed per photo (default 3)")
    _add_common(p)
    p.set_defaults(func=run_search)

    p = add_subcommand(sub, "export", "write a bundle that runs the model and the front end without PyTorch",
                       "g2d-face export --model g2d_lfw --out g2d_lfw_bundle",
                       description="Write a folder with the model and the front end's landmark network as ONNX, "
                       "the front end's HOG filter, the model's thresholds and a manifest (versions, SHA-256 of "
                       "every file, licences). FaceRecognizer(FOLDER) and --model FOLDER run it on onnxruntime "
                       "without PyTorch. The export is checked: random faces through PyTorch and onnxruntime "
                       "must agree to --tolerance.")
    p.add_argument("--model", default="g2d_lfw", help=f"the face model (default g2d_lfw): {MODELS}")
    p.add_argument("--out", required=True, metavar="DIR", help="bundle folder to write")
    p.add_argument("--front-end", metavar="DIR", help="front-end folder (g2d-data train-landmarks; default: the "
                   "shipped one)")
    p.add_argument("--flip", choices=("yes", "no"), default=None,
                   help="add the mirror image's embedding (default: as the model's thresholds were measured)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest difference allowed between PyTorch and the bundle (unit embeddings; default 1e-4)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.set_defaults(func=run_export)
    return parser


def run_export(args):
    from ..recognition.bundle_export import export_bundle

    info = export_bundle(args.model, args.out, detector_folder=args.front_end,
                         flip=None if args.flip is None else args.flip == "yes", force=args.force,
                         tolerance=args.tolerance)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    parity = info["parity"]
    print(f"wrote bundle {info['path']} ({info['model']}, {info['dim']}-d): {', '.join(info['files'])}")
    print(f"PyTorch vs onnxruntime on random faces: unit embeddings within {parity['embedding']:.2g}, "
          f"landmarks within {parity['landmarks']:.2g} px, face probability within {parity['probability']:.2g}")
    print(f"use it: g2d-face verify --model {info['path']} A.jpg B.jpg  (or FaceRecognizer({info['path']!r}))")
    return 0


def _recognizer(args):
    from ..recognition import FaceRecognizer

    threshold = _threshold_arg(args.threshold)
    device = args.device
    if device == "auto" and _is_bundle(args.model):
        device = "cpu"  # a bundle runs on onnxruntime's CPU provider
    if device != "cpu":  # resolving another device needs PyTorch; a bundle on the CPU runs without it
        from ..devices import select_device

        device = select_device(device)
    return FaceRecognizer(args.model, detector=args.detector, device=device,
                          thresholds=args.thresholds, threshold=threshold,
                          flip=None if args.flip is None else args.flip == "yes")


def _is_bundle(model):
    from ..recognition.bundle import is_bundle

    return isinstance(model, str) and is_bundle(model)


def _threshold_arg(text):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _check_photos(paths):
    """Every photo file readable as an image, before any model is loaded (DataError, one line)."""
    from ..data.image_io import read_photo

    for path in paths:
        read_photo(path, what="photo")


def _progress(items, args, desc):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="photo", disable=args.quiet or len(items) < 2, leave=False, file=sys.stderr)


def _num(x, digits=4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def run_verify(args):
    _check_photos(args.photos)
    rec = _recognizer(args)
    rec.resolve_threshold()  # a bad --threshold name fails before any work
    result = rec.verify(*args.photos)
    if args.json:
        print(json.dumps({"photos": args.photos, "same": result.same, "score": _num(result.score),
                          "threshold": _num(result.threshold), "threshold_name": result.threshold_name,
                          "units": result.units, "model": rec.model, "reason": result.reason}, indent=2))
        return 0
    a, b = args.photos
    if result.score is None:
        print(f"{a} vs {b}: no decision: {result.reason}")
    else:
        verdict = "same person" if result.same else "different people"
        sign = ">=" if result.same else "<"
        print(f"{a} vs {b}: {verdict} (score {result.score:.3f} {sign} threshold {result.threshold:.3f}, cosine; "
              f"threshold: {result.threshold_name})")
    return 0


def run_enroll(args):
    from ..faces.photo_folders import list_photos
    from ..fileio import atomic_open, write_errors

    photos = list_photos(args.gallery)
    rec = _recognizer(args)
    by_identity = {}
    for identity, rel in photos:
        by_identity.setdefault(identity, []).append(os.path.join(args.gallery, rel))
    rows, parts = [], {}
    for identity in _progress(sorted(by_identity), args, "enrolling"):
        gallery, found = rec.enroll({identity: by_identity[identity]})
        parts[identity] = gallery
        rows.extend(found)
    gallery = _merge(parts, rec.model, rec.embedder.dim)
    gallery.save(args.out)
    report = os.path.splitext(args.out)[0] + ".report.tsv"
    with write_errors(report), atomic_open(report, "w", encoding="utf-8", newline="\n") as f:
        f.write("identity\tphoto\toutcome\tscore\treason\n")
        for identity, photo, outcome, score, reason in rows:
            f.write(f"{identity}\t{photo}\t{outcome}\t{'-' if score != score else f'{score:.3f}'}\t{reason or '-'}\n")
    enrolled = sum(r[2] == "enrolled" for r in rows)
    empty = sorted(i for i in by_identity if i not in set(gallery.identities[k] for k in gallery.labels))
    if args.json:
        print(json.dumps({"gallery": args.out, "report": report, "identities": len(by_identity),
                          "photos": len(rows), "enrolled": enrolled, "identities_without_face": empty}, indent=2))
    else:
        print(f"wrote {args.out}: {enrolled} of {len(rows)} photos of {len(by_identity)} identities enrolled "
              f"(report: {report})")
        if empty:
            print(f"  no face found in any photo of: {', '.join(empty[:10])}" + (" ..." if len(empty) > 10 else ""))
    return 0


def _merge(parts, model, dim):
    """One Gallery of the per-identity galleries enroll made (identities in sorted order)."""
    import numpy as np

    from ..recognition.gallery import Gallery

    identities = sorted(parts)
    emb, labels, photos = [], [], []
    for k, identity in enumerate(identities):
        part = parts[identity]
        emb.append(part.embeddings)
        labels.extend([k] * len(part.labels))
        photos.extend(part.photos)
    embeddings = np.concatenate(emb) if emb else np.zeros((0, dim), np.float32)
    return Gallery(identities, embeddings.astype(np.float32), np.asarray(labels, np.int64), photos, model)


def run_search(args):
    from ..errors import ConfigError
    from ..recognition.gallery import load_gallery

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    gallery = load_gallery(args.gallery)
    _check_photos(args.photos)
    rec = _recognizer(args)
    rec.resolve_threshold()
    results = [(photo, rec.search(photo, gallery, top_k=args.top_k)) for photo in _progress(args.photos, args,
                                                                                              "searching")]
    if args.json:
        print(json.dumps([{"photo": photo, "identity": r.identity, "score": _num(r.score),
                           "matches": [{"identity": m.identity, "score": _num(m.score), "photo": m.photo}
                                       for m in r.matches],
                           "threshold": _num(r.threshold), "threshold_name": r.threshold_name, "units": r.units,
                           "reason": r.reason} for photo, r in results], indent=2))
        return 0
    print(f"threshold {results[0][1].threshold:.3f} cosine ({results[0][1].threshold_name})")
    width = max(len("photo"), *(len(p) for p, _ in results))
    print(f"{'photo':<{width}}  {'identity':<24} {'score':>6}  next matches")
    for photo, r in results:
        score = "-" if r.score is None else f"{r.score:.3f}"
        rest = ", ".join(f"{m.identity} {m.score:.3f}" for m in r.matches[1:])
        note = f"  ({r.reason})" if r.score is None else ""
        print(f"{photo:<{width}}  {r.identity:<24} {score:>6}  {rest}{note}")
    return 0


def main(argv=None):
    return run_subcommand(build_parser(), argv)


def entry():
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry()

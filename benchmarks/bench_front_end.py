"""Face finders on masked faces: detection, landmark error, what alignment costs a recognizer, speed.

Every candidate (a `--detector` value of g2d-data align) runs on the same photos, one thread:

1. detection: N LFW photos of View 1 DevTest people (no training person), clean and wearing each
   mask style the kit draws (drawn from the true landmarks before detection, seeded per photo
   and style; with --moved-masks from the true landmarks moved by a random similarity, as a
   real mask sits off the face's exact frame). Found = the picked face is the true one (eye
   midpoint within half an eye distance); wrong = another face picked.
2. landmark error on those photos: mean distance of the five points to the true ones over the
   true eye distance, median per mask style and per head-pose bucket (yaw from the true points:
   nose offset from the eye midline over the eye distance: frontal < 0.1 <= moderate < 0.25 <= strong).
3. the end-to-end cost: pairs of people the front end never trained on (View 1 DevTest, 1,000; or
   --pairs-file), whole 250 x 250 photos, every photo clean and wearing a mask (a style of all six,
   the held-out n95 and textured included, drawn per photo), aligned (a) by the candidate, (b) with
   its true landmarks; dlib's recognizer (the kit's PyTorch port, flip added; --recognizer) embeds;
   10-fold accuracy as arcface_torch on clean, masked-clean and masked-masked pairs.
   Cost = (b) - (a) in points. A photo where the candidate finds no face is used resized whole.
4. speed: CPU seconds per photo of `find` over all photos of 1, and the ratio to `dlib` (dlib's
   HOG detector + 68-point model: the kit's path before the masked-face front end), same run.
5. optional, --real DIR: a folder of real photos of masked people (any layout). Clear faces have at
   least --min-iod px between the eyes: those of --real-reference (every face, eye centres from
   an independent finder: benchmarks/real_reference.py runs dlib's CNN detector + 68 points; or
   by hand), else those any candidate found. For the photos with a clear face, the share where
   the candidate's face is one of them (eye midpoint within half an eye distance), picking the
   largest face as `g2d-data align` does (LFW photos: the face nearest the centre, as LFW's
   landmarks).
6. optional, --crops N: tight crops (insightface_g2d/faces/tight_crops.py) of N DevTest photos, clean
   and masked (the six styles in turn), the face box filling 70, 85 and 100 % of the crop, resized to
   96, 128, 160 and 224 px: found, and of those the share with both eyes within 0.1 eye distance of
   the truth, for each of --crop-candidates (g2d-cropped: g2d with assume_cropped), CPU ms a crop.

Candidates: dlib (HOG + 68 points), g2d (the default front end: network + 68-point refit where it
agrees), g2d-net (the network's points only, refit=False), g2d-cropped, g2d:FOLDER.

    python benchmarks/bench_front_end.py --lfw ../shared/data/lfw --photos 0 --pairs 1000 --crops 100
    python benchmarks/bench_front_end.py --lfw ../shared/data/lfw --photos 300 --pairs 1000
    python benchmarks/bench_front_end.py --lfw ../shared/data/lfw --photos 60 --pairs 200 \\
        --candidates dlib g2d --real /tmp/real_masked --grid docs/front_end_grid.png
    python benchmarks/bench_front_end.py --lfw ../shared/data/lfw --photos 0 --pairs 0 \\
        --candidates dlib g2d --real /tmp/real_masked --real-reference benchmarks/data/real_masked_reference.tsv

benchmarks/data/real_masked_reference.tsv holds the clear faces of the `with_mask` photos of
chandrikadeb7/Face-Mask-Detection (commit 7e50074, the files of dataset/with_mask/ whose names have
no spaces, in one folder): every face dlib's CNN detector + 68 points found there
(benchmarks/real_reference.py), with 16 rows set by hand after looking at each photo where the
kit's front end missed the reference: 13 where the 68-point eyes sat on a brow, an ear or the
mask (turned heads), 3 clear faces the CNN detector missed (column `source` says which).
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from insightface_g2d.data.align import align_face, read_landmarks_tsv  # noqa: E402
from insightface_g2d.faces.finders import build_finder, finder_spec  # noqa: E402
from insightface_g2d.data.image_io import IMAGE_EXTENSIONS, fit_square, read_image_file  # noqa: E402
from insightface_g2d.faces.landmark_training import yaw_of  # noqa: E402
from insightface_g2d.masks.styles import MASK_STYLES  # noqa: E402
from insightface_g2d.masks.synthesizer import MaskSynthesizer, rng_for  # noqa: E402
from insightface_g2d.faces.photo_folders import read_identity_list  # noqa: E402

cv2.setNumThreads(1)
torch.set_num_threads(1)

CONDITIONS = ("clean",) + tuple(MASK_STYLES)
POSES = ("frontal", "moderate", "strong")
CANDIDATES = {
    "dlib": dict(detector="dlib"),
    "dlib+cnn": dict(detector="dlib", cnn_fallback=True),
    "g2d": dict(detector="g2d"),
    "g2d-net": dict(detector="g2d", refit=False),
    "g2d-cropped": dict(detector="g2d", assume_cropped=True),
}
WHOLE_PHOTO_CANDIDATES = ("dlib", "g2d-net", "g2d")  # the default of --candidates
CROP_CANDIDATES = ("dlib", "g2d", "g2d-cropped")     # the default of --crop-candidates


def candidate(name):
    """finder_spec options of a --candidates name."""
    return CANDIDATES[name] if name in CANDIDATES else dict(detector=name)


def pose_bucket(lmk):
    """Yaw bucket of true landmarks [5, 2]: |nose x - eye midpoint x| / eye distance < 0.1, < 0.25, else strong."""
    r = float(yaw_of(lmk)[0])
    return POSES[0] if r < 0.1 else POSES[1] if r < 0.25 else POSES[2]


def point_errors(found, true):
    """Distance of each of the five points to the true one over the true eye distance: [5]."""
    iod = np.linalg.norm(true[1] - true[0])
    return np.linalg.norm(np.asarray(found, np.float64) - true, axis=1) / max(iod, 1e-6)


def right_face(found, true):
    iod = np.linalg.norm(true[1] - true[0])
    return bool(np.linalg.norm(np.asarray(found, np.float64)[:2].mean(0) - true[:2].mean(0)) < 0.5 * iod)


MOVE_SCALE, MOVE_TURN, MOVE_SHIFT = 0.08, 6.0, 0.08  # --moved-masks: log-scale, degrees, share of the eye distance


def moved_landmarks(lmk, rng):
    """Landmarks [5, 2] moved by a random similarity about their centroid: scaled by exp(U(-MOVE_SCALE,
    MOVE_SCALE)), turned by U(-MOVE_TURN, MOVE_TURN) degrees, shifted by U(-MOVE_SHIFT, MOVE_SHIFT) eye
    distances in x and y. A mask drawn from them sits off the face's exact five-point frame."""
    lmk = np.asarray(lmk, np.float64)
    centre, iod = lmk.mean(axis=0), float(np.linalg.norm(lmk[1] - lmk[0]))
    scale, turn = np.exp(rng.uniform(-MOVE_SCALE, MOVE_SCALE)), np.radians(rng.uniform(-MOVE_TURN, MOVE_TURN))
    rot = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return (lmk - centre) @ rot.T + centre + rng.uniform(-MOVE_SHIFT, MOVE_SHIFT, 2) * iod


def masked_photo(synth, img, lmk, key, style, seed, moved=False):
    """The photo wearing a mask of `style` drawn from landmarks `lmk` (moved first with --moved-masks)."""
    if style == "clean":
        return img
    if moved:
        lmk = moved_landmarks(lmk, rng_for(seed, f"{key}|{style}|moved"))
    return synth.apply_landmarks(img, lmk, rng_for(seed, f"{key}|{style}"), style=style)[0]


def timed_find(finder, img):
    t0 = time.process_time()
    f = finder.find(img)
    return f, time.process_time() - t0


def detection_and_landmarks(finders, lfw, table, keys, synth, seed, log, moved=False):
    """Per candidate: {condition: [(found, wrong, error or nan, pose)]}, CPU seconds [calls]."""
    rows = {name: {c: [] for c in CONDITIONS} for name in finders}
    times = {name: [] for name in finders}
    for n, key in enumerate(keys):
        img = read_image_file(lfw / "lfw-deepfunneled" / key)
        true = table[key].astype(np.float64)
        pose = pose_bucket(true)
        for cond in CONDITIONS:
            photo = masked_photo(synth, img, true, key, cond, seed, moved)
            for name, finder in finders.items():
                f, dt = timed_find(finder, photo)
                times[name].append(dt)
                ok = f.landmarks is not None and right_face(f.landmarks, true)
                wrong = f.landmarks is not None and not ok
                per = point_errors(f.landmarks, true) if ok else np.full(5, np.nan)
                rows[name][cond].append((ok, wrong, float(per.mean()), pose, per))
        if (n + 1) % 25 == 0:
            log(f"  detection: {n + 1}/{len(keys)} photos")
    return rows, times


def summarize_detection(rows):
    out = {}
    for cond, r in rows.items():
        found = np.array([x[0] for x in r])
        wrong = np.array([x[1] for x in r])
        err = np.array([x[2] for x in r])
        poses = np.array([x[3] for x in r])
        out[cond] = {"rate": float(found.mean()), "wrong": int(wrong.sum()), "n": len(r),
                     "median_error": float(np.nanmedian(err)) if found.any() else float("nan"),
                     "by_pose": {p: (float(np.nanmedian(err[poses == p])) if (found & (poses == p)).any()
                                     else float("nan"), int((poses == p).sum())) for p in POSES}}
    masked = [x for c in CONDITIONS[1:] for x in rows[c]]
    for cond, r in (("clean", rows["clean"]), ("masked (all styles)", masked)):
        per = np.array([x[4] for x in r])
        out.setdefault(cond, {})["by_point"] = np.nanmedian(per, axis=0).tolist() if np.isfinite(per).any() else []
    err = np.array([x[2] for x in masked])
    poses = np.array([x[3] for x in masked])
    out["masked (all styles)"] = {
        "by_point": out["masked (all styles)"]["by_point"],
        "rate": float(np.mean([x[0] for x in masked])), "wrong": int(sum(x[1] for x in masked)), "n": len(masked),
        "median_error": float(np.nanmedian(err)),
        "by_pose": {p: (float(np.nanmedian(err[poses == p])) if np.isfinite(err[poses == p]).any() else float("nan"),
                        int((poses == p).sum())) for p in POSES}}
    return out


PROTOCOLS = ("clean", "masked-clean", "masked-masked")


def photo_style(seed, rel):
    """The mask style photo `rel` wears in the end-to-end pairs: one of all six (the held-out n95 and
    textured included), drawn from (seed, path), so a photo in several pairs wears the same mask."""
    styles = list(MASK_STYLES)
    return styles[int(rng_for(seed, f"style|{rel}").integers(len(styles)))]


def end_to_end(finders, lfw, table, pairs_file, n_pairs, synth, seed, log, moved=False, recognizer="dlib"):
    """What each candidate's placement costs a recognizer, whole photos, both faces of every pair through
    the candidate: {"reference": {protocol: accuracy}, name: {"accuracy": {protocol: acc}, "cost": {protocol:
    points}, "missed": {"clean": n, "masked": n}, "ms": CPU ms a find}}, pairs used, photos.

    Reference: the same photos aligned with their true landmarks. Protocols: clean (both clean),
    masked-clean (the first photo of each pair masked), masked-masked (both). A photo where a candidate
    finds no face is used resized whole. Cost = reference accuracy - candidate's, in points."""
    from insightface_g2d.embedders.factory import build_embedder
    from insightface_g2d.evaluation.pairs import read_pairs, resolve_paths
    from insightface_g2d.evaluation.verification import verification_metrics

    pairs = read_pairs(pairs_file)
    if n_pairs < len(pairs):
        pairs = pairs.take_per_fold(max(2, n_pairs // 10))
    base, paths = resolve_paths(lfw / "lfw-deepfunneled", pairs)
    photos = sorted(set(paths))
    index = {rel: k for k, rel in enumerate(photos)}
    faces = {name: {c: [] for c in ("clean", "masked")} for name in ["true landmarks"] + list(finders)}
    missed = {name: {"clean": 0, "masked": 0} for name in finders}
    times = {name: [] for name in finders}
    for n, rel in enumerate(photos):
        img, true = read_image_file(base / rel), table[rel].astype(np.float64)
        masked = masked_photo(synth, img, true, rel, photo_style(seed, rel), seed, moved)
        for cond, photo in (("clean", img), ("masked", masked)):
            faces["true landmarks"][cond].append(align_face(photo, true))
            for name, finder in finders.items():
                f, dt = timed_find(finder, photo)
                times[name].append(dt)
                if f.landmarks is None:
                    missed[name][cond] += 1
                    faces[name][cond].append(fit_square(photo, 112))
                else:
                    faces[name][cond].append(align_face(photo, f.landmarks))
        if (n + 1) % 200 == 0:
            log(f"  end to end: {n + 1}/{len(photos)} photos")
    teacher = build_embedder(recognizer)
    first = np.array([index[p] for p in paths[0::2]])
    second = np.array([index[p] for p in paths[1::2]])
    out = {}
    for name, by_cond in faces.items():
        emb = {c: teacher.embed_images(np.stack(v), flip=True, progress=False) for c, v in by_cond.items()}
        acc = {}
        for proto in PROTOCOLS:
            a = emb["clean" if proto == "clean" else "masked"][first]
            b = emb["masked" if proto == "masked-masked" else "clean"][second]
            e = np.empty((2 * len(pairs), a.shape[1]), np.float32)
            e[0::2], e[1::2] = a, b
            acc[proto] = float(verification_metrics(e, pairs.issame, folds=pairs.folds)["accuracy"])
        out[name] = acc
    ref = out.pop("true landmarks")
    res = {"reference": ref}
    for name in finders:
        res[name] = {"accuracy": out[name], "cost": {p: 100 * (ref[p] - out[name][p]) for p in PROTOCOLS},
                     "missed": missed[name], "ms": 1000 * float(np.mean(times[name]))}
    return res, len(pairs), len(photos)


def tight_crops(finders, lfw, table, keys, synth, seed, log):
    """Per candidate {(condition, fill, size): [(found, eyes placed)]} on tight crops of `keys` (clean, and
    masked in the six styles in turn), CPU seconds per find."""
    from insightface_g2d.faces.tight_crops import FILLS, SIZES, eyes_placed, tight_crop

    styles = list(MASK_STYLES)
    rows = {name: {} for name in finders}
    times = {name: [] for name in finders}
    for n, key in enumerate(keys):
        img, true = read_image_file(lfw / "lfw-deepfunneled" / key), table[key].astype(np.float64)
        for cond in ("clean", styles[n % len(styles)]):
            photo = masked_photo(synth, img, true, key, cond, seed)
            for fill in FILLS:
                for size in SIZES:
                    crop, lmk = tight_crop(photo, true, fill, size)
                    for name, finder in finders.items():
                        f, dt = timed_find(finder, crop)
                        times[name].append(dt)
                        ok = f.landmarks is not None
                        rows[name].setdefault(("clean" if cond == "clean" else "masked", fill, size), []).append(
                            (ok, ok and eyes_placed(f.landmarks, lmk)))
        if (n + 1) % 25 == 0:
            log(f"  tight crops: {n + 1}/{len(keys)} photos")
    return rows, times


def summarize_crops(rows):
    """{"all": (found share, placed share of found, n), "clean"/"masked"/fill/size: the same}."""
    def share(items):
        a = np.array(items, bool).reshape(-1, 2)
        found = int(a[:, 0].sum())
        return (found / max(len(a), 1), int(a[:, 1].sum()) / max(found, 1), len(a))

    out = {"all": share([x for v in rows.values() for x in v])}
    for i, name in ((0, None), (1, "fill"), (2, "size")):
        for key in sorted({k[i] for k in rows}):
            label = key if name is None else f"{name} {key}"
            out[label] = share([x for k, v in rows.items() if k[i] == key for x in v])
    return out


def read_reference(path):
    """{relative path: [(eye midpoint [2], eye distance), ...]} from a TSV 'path x1 y1 x2 y2' (the two eye
    centres), one row per face (a photo may have several: benchmarks/real_reference.py writes every face)."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines()[1:]:
        f = line.split("\t")
        if len(f) >= 5:
            e = np.array([float(v) for v in f[1:5]]).reshape(2, 2)
            out.setdefault(f[0], []).append((e.mean(0), float(np.linalg.norm(e[1] - e[0]))))
    return out


def real_photos(finders, folder, min_iod, reference, log):
    """Per candidate: faces found in the photos of `folder`, and the share of the photos with a clear face
    (eye distance >= min_iod: in `reference`, else found by any candidate) where the candidate's face is
    one of the clear faces (eye midpoint within half an eye distance of one)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    found = {name: {} for name in finders}
    times = {name: [] for name in finders}
    for n, path in enumerate(files):
        try:
            img = read_image_file(path)
        except Exception:  # noqa: BLE001 - a broken file in someone's folder is skipped
            continue
        rel = path.relative_to(folder).as_posix()
        for name, finder in finders.items():
            f, dt = timed_find(finder, img)
            times[name].append(dt)
            if f.landmarks is not None:
                found[name][rel] = f.landmarks.astype(np.float64)
        if (n + 1) % 200 == 0:
            log(f"  real photos: {n + 1}/{len(files)}")
    if reference is None:  # the faces any candidate found
        reference = {}
        for d in found.values():
            for p, lmk in d.items():
                reference.setdefault(p, []).append((lmk[:2].mean(0), float(np.linalg.norm(lmk[1] - lmk[0]))))
    clear = {p: [(m, i) for m, i in faces if i >= min_iod] for p, faces in reference.items()}
    clear = {p: faces for p, faces in clear.items() if faces}
    res = {}
    for name, d in found.items():
        hit = sum(1 for p, faces in clear.items()
                  if p in d and any(np.linalg.norm(d[p][:2].mean(0) - mid) < 0.5 * iod for mid, iod in faces))
        res[name] = {"any face": len(d), "clear found": hit, "ms": 1000 * float(np.mean(times[name]))}
    return res, len(files), len(clear), found


def grid(path, finders, lfw, table, keys, synth, seed, moved=False):
    """Rows: clean (true landmarks), masked (true landmarks), masked aligned by each candidate."""
    from insightface_g2d.data.grids import compose_grid, label_grid
    from insightface_g2d.data.image_io import write_image

    styles = list(MASK_STYLES)
    rows = {"clean/true points": [], "masked/true points": []}
    rows.update({f"masked/{name}": [] for name in finders})
    for i, key in enumerate(keys):
        img = read_image_file(lfw / "lfw-deepfunneled" / key)
        true = table[key].astype(np.float64)
        masked = masked_photo(synth, img, true, key, styles[i % len(styles)], seed, moved)
        rows["clean/true points"].append(align_face(img, true))
        rows["masked/true points"].append(align_face(masked, true))
        for name, finder in finders.items():
            f = finder.find(masked)
            rows[f"masked/{name}"].append(align_face(masked, f.landmarks) if f.landmarks is not None
                                          else np.zeros((112, 112, 3), np.uint8))
    names = list(rows)
    picture = label_grid(compose_grid([rows[n] for n in names]), names, 112)
    write_image(path, picture, colors=256)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python benchmarks/bench_front_end.py --lfw ../shared/data/lfw "
                                 "--photos 300 --pairs 1000")
    ap.add_argument("--lfw", required=True, help="LFW folder (lfw-deepfunneled/, landmarks5.tsv, View 1 lists)")
    ap.add_argument("--photos", type=int, default=300, help="DevTest photos for detection and landmarks (default 300)")
    ap.add_argument("--pairs", type=int, default=1000, help="DevTest pairs for the end metric (default all 1000)")
    ap.add_argument("--candidates", nargs="+", default=list(WHOLE_PHOTO_CANDIDATES), metavar="NAME",
                    help=f"finders to compare: {', '.join(CANDIDATES)}, or g2d:FOLDER (a front end from "
                    f"g2d-data train-landmarks --out FOLDER); default {' '.join(WHOLE_PHOTO_CANDIDATES)}")
    ap.add_argument("--pairs-file", metavar="TXT", help="pairs of the end-to-end cost (default: View 1 DevTest's, "
                    "people the front end never trained on)")
    ap.add_argument("--recognizer", default="dlib", help="the recognizer of the end-to-end cost (an embedder spec; "
                    "default dlib: dlib's ResNet in the kit's port)")
    ap.add_argument("--crops", type=int, default=0, help="DevTest photos to cut tight crops from (default 0: none)")
    ap.add_argument("--crop-candidates", nargs="+", default=list(CROP_CANDIDATES), metavar="NAME",
                    help=f"finders run on the tight crops (default {' '.join(CROP_CANDIDATES)})")
    ap.add_argument("--real", metavar="DIR", help="a folder of real photos of masked people")
    ap.add_argument("--real-reference", metavar="TSV",
                    help="the clear faces of --real: 'path x1 y1 x2 y2' (eye centres; paths relative to --real); "
                    "without it, the faces any candidate finds")
    ap.add_argument("--min-iod", type=float, default=60.0, help="eye distance of a clear face in --real (px)")
    ap.add_argument("--grid", metavar="PNG", help="also write a grid of masked DevTest faces aligned by each candidate")
    ap.add_argument("--moved-masks", action="store_true",
                    help="draw each mask from the true landmarks moved by a random similarity (scaled by up to "
                    f"about {100 * MOVE_SCALE:g} %%, turned by up to {MOVE_TURN:g} degrees, shifted by up to "
                    f"{100 * MOVE_SHIFT:g} %% of the eye distance in x and in y), as a real mask does not sit in "
                    "the face's exact five-point frame")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE", help="write every figure here too")
    args = ap.parse_args()
    for name in args.candidates + args.crop_candidates:
        if name not in CANDIDATES and not name.startswith("g2d:"):
            ap.error(f"unknown candidate {name!r}: choose from {', '.join(CANDIDATES)} or g2d:FOLDER")

    def log(msg):
        print(msg, flush=True)

    lfw = Path(args.lfw)
    table = read_landmarks_tsv(lfw / "landmarks5.tsv")
    people = set(read_identity_list(lfw / "peopleDevTest.txt"))
    devtest = sorted(k for k in table if k.split("/")[0] in people)

    def keys_of(n, seed):
        pick = np.random.default_rng(seed).choice(len(devtest), min(n, len(devtest)), replace=False)
        return [devtest[i] for i in sorted(pick)]

    keys = keys_of(args.photos, args.seed)
    args.pairs_file = Path(args.pairs_file) if args.pairs_file else lfw / "pairsDevTest.txt"
    synth = MaskSynthesizer()
    finders = {name: build_finder(finder_spec(pick="center", **candidate(name))) for name in args.candidates}
    report = {"photos": len(keys), "seed": args.seed, "moved_masks": bool(args.moved_masks)}
    if args.moved_masks:
        log("masks drawn off the exact frame (--moved-masks)")

    if keys:
        log(f"1-2. detection and landmark error: {len(keys)} DevTest photos x {len(CONDITIONS)} conditions")
        rows, times = detection_and_landmarks(finders, lfw, table, keys, synth, args.seed, log, args.moved_masks)
        det = {name: summarize_detection(rows[name]) for name in finders}
        report["detection"] = det
        head = f"{'candidate':10s} " + " ".join(f"{c[:9]:>9s}" for c in CONDITIONS)
        log("\ndetection rate (right face found), % [wrong faces picked]\n" + head)
        for name in finders:
            log(f"{name:10s} " + " ".join(f"{100 * det[name][c]['rate']:6.1f}[{det[name][c]['wrong']}]"
                                          for c in CONDITIONS))
        log("\nmedian landmark error (mean point distance / true eye distance)\n" + head + "    masked/clean")
        for name in finders:
            d = det[name]
            clean = d["clean"]["median_error"]
            # a finder whose clean points are the truth itself (dlib: the true points are its own) has no ratio
            ratio = f"{d['masked (all styles)']['median_error'] / clean:.2f}x" if clean > 1e-3 else "- (clean 0)"
            log(f"{name:10s} " + " ".join(f"{d[c]['median_error']:9.4f}" for c in CONDITIONS) + f"    {ratio}")
        log("\nmedian landmark error by head pose (frontal / moderate / strong yaw): clean | masked")
        for name in finders:
            d = det[name]
            cl = " / ".join(f"{d['clean']['by_pose'][p][0]:.4f}" for p in POSES)
            ma = " / ".join(f"{d['masked (all styles)']['by_pose'][p][0]:.4f}" for p in POSES)
            log(f"{name:10s} {cl} | {ma}")
        log("\nmedian error per point (left eye, right eye, nose tip, left, right mouth corner): clean | masked")
        for name in finders:
            d = det[name]
            log(f"{name:10s} " + " ".join(f"{v:.3f}" for v in d["clean"]["by_point"]) + " | " +
                " ".join(f"{v:.3f}" for v in d["masked (all styles)"]["by_point"]))
        counts = det[next(iter(finders))]["clean"]["by_pose"]
        log("photos per pose bucket: " + ", ".join(f"{p} {counts[p][1]}" for p in POSES))

        base = "dlib" if "dlib" in finders else next(iter(finders))
        log(f"\n4. speed: CPU ms per photo (one thread), ratio to {base} (same run)")
        speed = {name: 1000 * float(np.mean(t)) for name, t in times.items()}
        for name in finders:
            log(f"{name:10s} {speed[name]:8.1f} ms   {speed[name] / speed[base]:.2f}x")
        report["speed_ms"] = speed

    if args.pairs > 0:
        log(f"\n3. end-to-end cost: {args.recognizer}'s pair accuracy on each candidate's crops minus on the "
            f"true-landmark crops, whole photos of {args.pairs_file.name}")
        e2e, n, n_photos = end_to_end(finders, lfw, table, args.pairs_file, args.pairs, synth, args.seed, log,
                                      args.moved_masks, args.recognizer)
        ref = e2e["reference"]
        base = "dlib" if "dlib" in finders else next(iter(finders))
        log(f"{n} pairs, {n_photos} photos, each clean and masked (a style of all six drawn per photo); "
            "true landmarks: " + ", ".join(f"{p} {100 * ref[p]:.2f}%" for p in PROTOCOLS))
        log(f"{'candidate':12s} " + " ".join(f"{p:>14s}" for p in PROTOCOLS) +
            "   found clean / masked   ms a photo (ratio to " + base + ")")
        for name in finders:
            r = e2e[name]
            found = " / ".join(f"{100 * (1 - r['missed'][c] / n_photos):.1f}%" for c in ("clean", "masked"))
            log(f"{name:12s} " + " ".join(f"{r['cost'][p]:+14.2f}" for p in PROTOCOLS) +
                f"   {found:>22s}   {r['ms']:.1f} ({r['ms'] / e2e[base]['ms']:.2f}x)")
        report["end_to_end"] = {"pairs": n, "photos": n_photos, **e2e}

    if args.crops > 0:
        crop_keys = keys_of(args.crops, args.seed + 1)
        crop_finders = {name: build_finder(finder_spec(pick="largest", **candidate(name)))
                        for name in args.crop_candidates}
        log(f"\n6. tight crops: {len(crop_keys)} DevTest photos, clean and masked, the face box filling "
            "70 / 85 / 100 % of crops of 96 / 128 / 160 / 224 px (found; of those, both eyes within 0.1 eye "
            "distance of the truth)")
        rows, ctimes = tight_crops(crop_finders, lfw, table, crop_keys, synth, args.seed, log)
        base = "dlib" if "dlib" in crop_finders else next(iter(crop_finders))
        crops = {name: summarize_crops(rows[name]) for name in crop_finders}
        labels = list(crops[next(iter(crop_finders))])
        log(f"{'candidate':12s} " + " ".join(f"{str(k):>12s}" for k in labels) + "   ms a crop")
        for name in crop_finders:
            ms = 1000 * float(np.mean(ctimes[name]))
            log(f"{name:12s} " + " ".join(f"{100 * crops[name][k][0]:5.1f}/{100 * crops[name][k][1]:5.1f}"
                                         for k in labels) + f"   {ms:.1f} ({ms / (1000 * np.mean(ctimes[base])):.2f}x)")
        report["tight_crops"] = {name: {str(k): v for k, v in c.items()} for name, c in crops.items()}

    if args.real:
        log(f"\n5. real photos of masked people: {args.real}")
        reference = read_reference(args.real_reference) if args.real_reference else None
        largest = {name: build_finder(finder_spec(pick="largest", **candidate(name))) for name in args.candidates}
        res, total, clear, found = real_photos(largest, args.real, args.min_iod, reference, log)
        where = f"in {args.real_reference}" if reference else "found by some candidate"
        log(f"{total} photos; {clear} with a clear face (at least {args.min_iod:g} px between the eyes, {where})")
        for name in finders:
            log(f"{name:10s} a face in {res[name]['any face']} photos; a clear face found in "
                f"{res[name]['clear found']} "
                f"of {clear} ({100 * res[name]['clear found'] / max(clear, 1):.1f}%); {res[name]['ms']:.0f} ms a photo")
        report["real"] = {"photos": total, "clear": clear, "found": res,
                          "faces": {n: {p: v.tolist() for p, v in d.items()} for n, d in found.items()}}

    if args.grid:
        grid(args.grid, finders, lfw, table, keys[:10], synth, args.seed, args.moved_masks)
        log(f"\nwrote {args.grid}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()

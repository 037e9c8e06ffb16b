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
3. the end metric: View 1 DevTest pairs (1,000), masked-clean: the first photo of each pair wears a
   mask (a random style of all six, seeded per pair), the second is clean and aligned with its true
   landmarks; the masked face is aligned (a) by the candidate, (b) with its true landmarks; dlib's
   recognizer (the kit's PyTorch port, flip added) embeds; 10-fold accuracy as arcface_torch.
   Cost = (b) - (a). A masked photo where the candidate finds no face is used resized whole.
4. speed: CPU seconds per photo of `find` over all photos of 1, and the ratio to `dlib` (dlib's
   HOG detector + 68-point model: the kit's path before the masked-face front end), same run.
5. optional, --real DIR: a folder of real photos of masked people (any layout). Clear faces have at
   least --min-iod px between the eyes: those of --real-reference (every face, eye centres from
   an independent finder: benchmarks/real_reference.py runs dlib's CNN detector + 68 points; or
   by hand), else those any candidate found. For the photos with a clear face, the share where
   the candidate's face is one of them (eye midpoint within half an eye distance), picking the
   largest face as `g2d-data align` does (LFW photos: the face nearest the centre, as LFW's
   landmarks).

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
from insightface_g2d.data.finders import build_finder, finder_spec  # noqa: E402
from insightface_g2d.data.image_io import IMAGE_EXTENSIONS, fit_square, read_image_file  # noqa: E402
from insightface_g2d.data.landmark_training import yaw_of  # noqa: E402
from insightface_g2d.data.mask_styles import MASK_STYLES  # noqa: E402
from insightface_g2d.data.masks import MaskSynthesizer, rng_for  # noqa: E402
from insightface_g2d.data.prepare import read_identity_list  # noqa: E402

cv2.setNumThreads(1)
torch.set_num_threads(1)

CONDITIONS = ("clean",) + tuple(MASK_STYLES)
POSES = ("frontal", "moderate", "strong")
CANDIDATES = {
    "dlib": dict(detector="dlib"),
    "dlib+cnn": dict(detector="dlib", cnn_fallback=True),
    "g2d": dict(detector="g2d"),
}


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


def pair_accuracy(finders, lfw, table, pairs_file, n_pairs, synth, seed, log, moved=False):
    """{'true landmarks': acc, candidate: (acc, masked faces not found)} on masked-clean pairs."""
    from insightface_g2d.embedders.factory import build_embedder
    from insightface_g2d.evaluation.pairs import read_pairs, resolve_paths
    from insightface_g2d.evaluation.verification import verification_metrics

    pairs = read_pairs(pairs_file)
    if n_pairs < len(pairs):
        pairs = pairs.take_per_fold(max(2, n_pairs // 10))
    base, paths = resolve_paths(lfw / "lfw-deepfunneled", pairs)
    styles = list(MASK_STYLES)
    aligned = {"true landmarks": []}
    aligned.update({name: [] for name in finders})
    partners, missed = [], {name: 0 for name in finders}
    for i in range(len(pairs)):
        a, b = paths[2 * i], paths[2 * i + 1]
        img_a, img_b = read_image_file(base / a), read_image_file(base / b)
        style = styles[int(np.random.default_rng([seed, 7, i]).integers(len(styles)))]
        masked = masked_photo(synth, img_a, table[a].astype(np.float64), f"pair{i}:{a}", style, seed, moved)
        aligned["true landmarks"].append(align_face(masked, table[a]))
        for name, finder in finders.items():
            f = finder.find(masked)
            if f.landmarks is None:
                missed[name] += 1
                aligned[name].append(fit_square(masked, 112))
            else:
                aligned[name].append(align_face(masked, f.landmarks))
        partners.append(align_face(img_b, table[b]))
        if (i + 1) % 100 == 0:
            log(f"  pairs: {i + 1}/{len(pairs)}")
    teacher = build_embedder("dlib")
    emb_b = teacher.embed_images(np.stack(partners), flip=True, progress=False)
    out = {}
    for name, faces in aligned.items():
        emb_a = teacher.embed_images(np.stack(faces), flip=True, progress=False)
        emb = np.empty((2 * len(pairs), emb_a.shape[1]), np.float32)
        emb[0::2], emb[1::2] = emb_a, emb_b
        acc = verification_metrics(emb, pairs.issame, folds=pairs.folds)["accuracy"]
        out[name] = (float(acc), missed.get(name, 0))
    return out, len(pairs)


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
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), metavar="NAME",
                    help=f"finders to compare: {', '.join(CANDIDATES)}, or g2d:FOLDER (a front end from "
                    "g2d-data train-landmarks --out FOLDER); default all three")
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
    for name in args.candidates:
        if name not in CANDIDATES and not name.startswith("g2d:"):
            ap.error(f"unknown candidate {name!r}: choose from {', '.join(CANDIDATES)} or g2d:FOLDER")

    def log(msg):
        print(msg, flush=True)

    lfw = Path(args.lfw)
    table = read_landmarks_tsv(lfw / "landmarks5.tsv")
    people = set(read_identity_list(lfw / "peopleDevTest.txt"))
    keys = sorted(k for k in table if k.split("/")[0] in people)
    rng = np.random.default_rng(args.seed)
    keys = [keys[i] for i in sorted(rng.choice(len(keys), min(args.photos, len(keys)), replace=False))]
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
        log(f"\n3. masked-clean accuracy of dlib's recognizer, View 1 DevTest pairs")
        acc, n = pair_accuracy(finders, lfw, table, lfw / "pairsDevTest.txt", args.pairs, synth, args.seed, log,
                               args.moved_masks)
        ref = acc["true landmarks"][0]
        log(f"{n} pairs; masked face aligned with its true landmarks: {100 * ref:.2f}%")
        for name in finders:
            a, missed = acc[name]
            log(f"{name:10s} {100 * a:.2f}%  cost {100 * (ref - a):+.2f} points  ({missed} masked faces not found)")
        report["pairs"] = {"n": n, "accuracy": acc}

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

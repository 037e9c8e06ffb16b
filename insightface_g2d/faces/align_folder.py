"""From a folder of photos to aligned faces.

    align_folder(src, out, landmarks=TSV | detector="dlib" | detector="det_10g.onnx", ...)
        src/<identity>/<photo> -> out/<identity>/<photo stem>.jpg aligned on the ArcFace template,
        plus out/align_report.tsv listing the photos whose face was not found (and why), and
        out/landmarks5.tsv with the five points each face was aligned with (in the photo's pixels).
        Each face is written atomically; a re-run skips faces already written; workers > 1 runs
        the landmark detector in that many processes.
    landmark_agreement(src, tsv, detector)
        the detector's five points against a landmarks file: error in inter-ocular units.
"""
import os
from pathlib import Path

import cv2
import numpy as np

from ..data.align import align_face
from ..data.image_io import read_photo, write_image
from ..errors import DataError
from ..fileio import atomic_open, write_errors
from .face_finding import Finding
from .finders import build_finder, finder_spec, miss_hint
from .landmarks import LandmarkIndex
from .photo_folders import list_photos, read_identity_list

REPORT_NAME = "align_report.tsv"
FORMATS = ("jpg", "png")


def _written_before(out, target):
    """True when the aligned face `target` (relative to `out`) is a file reached through no symbolic
    link: a link at its name, or at its identity folder's, is replaced, never taken as done."""
    path = Path(out)
    for part in Path(target).parts:
        path = path / part
        if path.is_symlink():
            return False
    return path.is_file()


# ------------------------------------------------------------------------------------ workers
_WORKER = {}


def _init_worker(spec, detector=None):
    """Every worker, the in-process one of workers=1 included, runs OpenCV and torch on one thread:
    the front end's landmark network is small, and torch spreading it over every core (its default)
    costs more than it saves (align_folder on 50 LFW photos, workers=1, on a busy 2-core machine:
    97.7 s on torch's two threads against 14.0 s on one, the same faces)."""
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    _WORKER["spec"] = spec
    _WORKER["detector"] = detector


def _init_pool_worker(spec):
    """A worker process (the workers are the parallelism)."""
    _init_worker(spec)


def _thread_counts():
    """(OpenCV threads, torch threads) of this process, to restore after an in-process run."""
    import torch

    return cv2.getNumThreads(), torch.get_num_threads()


def _restore_threads(counts):
    import torch

    cv2.setNumThreads(counts[0])
    torch.set_num_threads(counts[1])


def _detector():
    if _WORKER.get("detector") is None and _WORKER.get("spec") is not None:
        _WORKER["detector"] = build_finder(_WORKER["spec"])
    return _WORKER["detector"]


def _align_task(task):
    """(src path, out path, rel, landmarks or None, size, fmt, quality, out folder) -> (rel, Finding).

    With landmarks given the Finding says "found" with source "landmarks file". A photo without a
    face is never written."""
    src, out, rel, lmk, size, fmt, quality, within = task
    try:
        img = read_photo(src, what="photo")
        if lmk is None:
            found = _detector().find(img)
        else:
            found = Finding(np.asarray(lmk, np.float32), float("nan"), 1, None, "landmarks file", outcome="found")
        if found.landmarks is None:
            return rel, found
        face = align_face(img, found.landmarks, size=size, where=f"landmarks of {rel}")
    except DataError as err:
        return rel, Finding(reason=str(err), outcome="unreadable")
    write_image(out, face, quality, png_compression=3, within=within)  # a failed write stops the run (OutputError)
    return rel, found


def _detect_task(task):
    """(src path, rel) -> (rel, landmarks [5, 2] or None, source or reason)."""
    src, rel, mask = task
    try:
        img = read_photo(src, what="photo")
        if mask is not None:
            img = _mask_photo(img, *mask)
        lmk, why = _detector()(img)
    except DataError as err:
        return rel, None, str(err)
    return rel, lmk, why


def _mask_photo(img, landmarks, style, seed, rel):
    """The photo wearing a synthetic mask drawn from its true landmarks (seeded by path)."""
    from ..masks.synthesizer import MaskSynthesizer, rng_for

    key = ("synth", style)
    if key not in _WORKER:
        _WORKER[key] = MaskSynthesizer(styles=None if style == "random" else [style])
    return _WORKER[key].apply_landmarks(img, landmarks, rng_for(seed, rel))[0]


def _run(fn, tasks, spec, workers, desc, progress, detector=None):
    """Yield fn(task) for every task, in `workers` processes (or here when workers <= 1, with
    `detector` when given: the one already built from `spec`)."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(tasks) <= 1:
            before = _thread_counts()
            _init_worker(spec, detector)
            try:
                for task in tasks:
                    yield fn(task)
                    bar.update(1)
            finally:
                _restore_threads(before)
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # fork from a process with threads (tqdm, torch) can deadlock
        with ctx.Pool(int(workers), initializer=_init_pool_worker, initargs=(spec,)) as pool:
            for result in pool.imap_unordered(fn, tasks, chunksize=max(1, min(32, len(tasks) // (8 * workers)))):
                yield result
                bar.update(1)
    finally:
        bar.close()


# ------------------------------------------------------------------------------------ align
def align_folder(src, out, landmarks=None, detector=None, include=None, exclude=None, workers=1, size=112,
                 fmt="jpg", quality=95, pick="largest", upsample=1, cnn_fallback=False, det_size=640,
                 progress=True, refit=True, assume_cropped=False):
    """Align every photo of src/<identity>/* into out/<identity>/<stem>.<fmt> (see module doc).

    landmarks: a landmarks5.tsv-format file (paths relative to src), or detector: a finder
    ("g2d", the default when neither is given; "g2d:FOLDER", "dlib", an SCRFD .onnx path; see
    finders.py; refit, assume_cropped: the g2d front end's options). include / exclude: identity-list
    files or lists of names. Writes out/align_report.tsv: one row per photo (outcome, score, faces
    seen, picked box, source, reason). Returns a summary dict: photos, aligned, done_before, failed, no_face, too_small,
    unreadable, report (path), failures [(rel, reason)], hint (what to try for missed faces, or None).
    """
    if landmarks is not None and detector is not None:
        raise DataError("give one landmark source: a landmarks TSV (--landmarks) or a detector (--detector)")
    if assume_cropped and landmarks is not None:
        raise DataError("--assume-cropped places faces with the g2d front end: leave out --landmarks")
    if landmarks is None and detector is None:
        detector = "g2d"
    if fmt not in FORMATS:
        raise DataError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise DataError(f"output folder {out} is (inside) the photo folder {src}: choose another --out")
    inc = read_identity_list(include) if isinstance(include, (str, os.PathLike)) else include
    exc = read_identity_list(exclude) if isinstance(exclude, (str, os.PathLike)) else exclude
    skipped = []
    photos = list_photos(src, inc, exc, skipped)
    outputs = {}
    for _, rel in photos:
        target = str(Path(rel).with_suffix("." + fmt))
        if target in outputs:
            raise DataError(f"{outputs[target]} and {rel} would both be written to {target}: rename one of them")
        outputs[target] = rel
    spec = None if detector is None else finder_spec(detector, pick, upsample, cnn_fallback, det_size, refit,
                                                     assume_cropped)
    # built here, once: a missing extra or a bad .onnx fails before any work; reused when workers <= 1
    detector_here = build_finder(spec) if spec is not None else None
    table = LandmarkIndex(landmarks) if landmarks is not None else None
    results, tasks, done = {}, [], 0
    for rel, reason in skipped:
        results[rel] = Finding(reason=reason, outcome="unreadable")
    for target, rel in outputs.items():
        if _written_before(out, target):
            done += 1
            results[rel] = Finding(reason="aligned face already in the output folder", outcome="done before")
            continue
        lmk = None
        if table is not None:
            lmk = table.find(src / rel, src)
            if lmk is None:
                results[rel] = Finding(reason=f"no landmarks for it in {table.where}", outcome="no landmarks")
                continue
        tasks.append((str(src / rel), str(out / target), rel, lmk, int(size), fmt, int(quality), str(out)))
    for rel, found in _run(_align_task, tasks, spec, workers, "aligning", progress, detector_here):
        if found.landmarks is not None:
            found.outcome = "aligned"
        results[rel] = found
    report = out / REPORT_NAME
    write_align_report(report, results)
    write_found_landmarks(out / LANDMARKS_NAME, results)
    counts = {}
    for f in results.values():
        counts[f.outcome] = counts.get(f.outcome, 0) + 1
    failures = sorted((rel, f.reason) for rel, f in results.items() if f.outcome not in ("aligned", "done before"))
    missed = counts.get("no face", 0)
    return {"photos": len(photos) + len(skipped), "aligned": counts.get("aligned", 0), "done_before": done, "failed": len(failures),
            "no_face": missed, "too_small": counts.get("too small", 0), "unreadable": counts.get("unreadable", 0),
            "report": str(report), "landmarks": str(out / LANDMARKS_NAME), "failures": failures,
            "hint": miss_hint(spec) if spec is not None and missed else None}


REPORT_COLUMNS = ("path", "outcome", "score", "faces", "box", "source", "reason")
LANDMARKS_NAME = "landmarks5.tsv"


def write_found_landmarks(path, results):
    """out/landmarks5.tsv: the five points each aligned photo was aligned with, in the photo's pixels,
    paths relative to --src (the landmarks5 format `read_landmarks_tsv` reads: `g2d-mask apply
    --input SRC --landmarks OUT/landmarks5.tsv` masks the user's own photos). Rows of photos aligned
    by an earlier run ("done before") are kept from the file that run wrote."""
    from ..data.align import read_landmarks_tsv

    rows = {}
    if Path(path).is_file():
        try:
            rows = {rel: (lmk, "earlier run") for rel, lmk in read_landmarks_tsv(path).items()}
        except DataError:
            rows = {}
    for rel, found in results.items():
        if found.landmarks is not None:
            rows[rel] = (found.landmarks, found.source or "-")
        elif found.outcome != "done before":
            rows.pop(rel, None)
    with write_errors(path), atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("path\tx1\ty1\tx2\ty2\tx3\ty3\tx4\ty4\tx5\ty5\tsource\n")
        for rel in sorted(rows):
            lmk, source = rows[rel]
            xy = "\t".join(f"{v:.6f}" for v in np.asarray(lmk, np.float64).reshape(-1))  # float32 exactly
            f.write(f"{rel}\t{xy}\t{' '.join(str(source).split()) or '-'}\n")


def write_align_report(path, results):
    """align_report.tsv: one row per photo, sorted by path (columns REPORT_COLUMNS; '-' where empty).

    outcome: aligned, done before, no face, too small, unreadable, no landmarks; score: the finder's
    confidence in the picked face (g2d: the landmark network's face probability; dlib: the HOG score;
    SCRFD: its score); faces: faces the finder saw; box: x0,y0,x1,y1 of the picked one.
    """
    def cell(v):
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        return " ".join(str(v).split()) or "-"

    with write_errors(path), atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(REPORT_COLUMNS) + "\n")
        for rel in sorted(results):
            r = results[rel]
            box = ",".join(f"{v:.0f}" for v in r.box) if r.box is not None else None
            score = f"{r.score:.3f}" if r.score == r.score else None
            faces = r.faces if r.outcome in ("aligned", "found") and r.source != "landmarks file" else None
            f.write("\t".join(cell(v) for v in (rel, r.outcome, score, faces, box, r.source, r.reason)) + "\n")


def read_align_report(path):
    """Rows of an align_report.tsv as dicts (column -> text)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:] if line]


# ------------------------------------------------------------------------------------ agreement
def landmark_agreement(src, tsv, detector="g2d", sample=200, seed=0, pick="center", upsample=1,
                       cnn_fallback=False, det_size=640, workers=1, progress=True, mask=None):
    """Detector landmarks vs a landmarks file on a random sample of the file's photos under src.

    Error of a photo: mean distance of the five points over the inter-ocular distance of the file's
    landmarks. mask: None, a mask style name or "random": each photo wears a synthetic mask drawn
    from the file's landmarks before detection (seeded by `seed` and its path). Returns dict(sample,
    detected, median, p90, share_above_0_1, misses) (fractions).
    """
    if mask is not None and mask != "random":
        from ..masks.styles import mask_style

        mask_style(mask)  # an unknown style fails here, with a did-you-mean
    table = LandmarkIndex(tsv)
    src = Path(src)
    keys = sorted(k for k in table.rows if (src / k).is_file())
    if not keys:
        raise DataError(f"no photo of {tsv} found under {src}; paths in the file are relative to --src")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(keys), size=min(int(sample), len(keys)), replace=False).tolist())
    tasks = [(str(src / keys[i]), keys[i], None if mask is None else (table.rows[keys[i]], mask, seed, keys[i]))
             for i in chosen]
    spec = finder_spec(detector, pick, upsample, cnn_fallback, det_size)
    detector_here = build_finder(spec)
    errors, misses = [], []
    for rel, lmk, why in _run(_detect_task, tasks, spec, workers, "detecting", progress, detector_here):
        if lmk is None:
            misses.append((rel, why))
            continue
        ref = table.rows[rel].astype(np.float64)
        iod = float(np.linalg.norm(ref[1] - ref[0]))
        errors.append(float(np.linalg.norm(np.asarray(lmk, np.float64) - ref, axis=1).mean() / max(iod, 1e-6)))
    errors = np.asarray(errors)
    return {"sample": len(tasks), "detected": int(errors.size),
            "median": float(np.median(errors)) if errors.size else float("nan"),
            "p90": float(np.quantile(errors, 0.9)) if errors.size else float("nan"),
            "share_above_0_1": float((errors > 0.1).mean()) if errors.size else float("nan"),
            "misses": sorted(misses)}

"""From a folder of photos to training data: aligned 112x112 faces, RecordIO, a `.bin` of pairs.

    align_folder(src, out, landmarks=TSV | detector="dlib" | detector="det_10g.onnx", ...)
        src/<identity>/<photo> -> out/<identity>/<photo stem>.jpg aligned on the ArcFace template,
        plus out/align_report.tsv listing the photos whose face was not found (and why), and
        out/landmarks5.tsv with the five points each face was aligned with (in the photo's pixels).
        Each face is written atomically; a re-run skips faces already written; workers > 1 runs
        the landmark detector in that many processes.
    pack_folder(src, out)
        an aligned image folder -> out/train.rec + train.idx in arcface_torch's layout: record 0 a
        header (label [first identity record, end]), images 1..N (label = class id, identities
        numbered in sorted folder order as ImageFolderFaces does), then one record per identity
        (label [first image, end)). Image bytes are stored as they are (JPEG/PNG), others re-encoded.
    landmark_agreement(src, tsv, detector)
        the detector's five points against a landmarks file: error in inter-ocular units.

Identity lists (include / exclude): one identity per line, either a plain name or `name<TAB>count`
(LFW's peopleDevTrain.txt, people.txt, lfw-names.txt); lines holding only integers (the count
headers of those files) and lines starting with '#' are skipped.
"""
import errno
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..fileio import atomic_open, write_errors
from .align import align_face
from .face_finding import Finding
from .finders import build_finder, finder_spec, miss_hint
from .image_io import IMAGE_EXTENSIONS, encode_image_bytes, read_photo, try_decode_image_bytes, write_image
from .landmarks import LandmarkIndex

REPORT_NAME = "align_report.tsv"
FORMATS = ("jpg", "png")


# ------------------------------------------------------------------------------------ identities
def read_identity_list(path):
    """Identity names of an include/exclude list (see module doc), in file order, without duplicates."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"identity list {path} not found; give a file with one identity per line "
                        "(a name, or name<TAB>count as LFW's peopleDevTrain.txt)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read identity list {path}: {err}") from None
    names = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else [line]
        if all(f.strip().lstrip("-").isdigit() for f in line.split()):
            continue  # a count header ("4038", "10", "10 300")
        names.append(fields[0].strip())
    if not names:
        raise DataError(f"identity list {path} names no identity")
    return list(dict.fromkeys(names))


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _entry_problem(entry, want_dir):
    """None when scandir `entry` is a folder (want_dir) or a file to list; the string 'skip' when it
    is not one; a reason when it cannot be examined (a symbolic link loop, no permission, ...)."""
    try:
        ok = entry.is_dir() if want_dir else entry.is_file()
    except OSError as err:
        return _os_reason(err)
    return None if ok else "skip"


def _os_reason(err):
    if err.errno == errno.ELOOP:
        return "a symbolic link loop (ELOOP); skipped"
    return f"cannot be read ({err.strerror or err}); skipped"


def list_photos(src, include=None, exclude=None, skipped=None):
    """[(identity, relative path '/'-separated)] of src/<identity>/<image>, sorted.

    include / exclude: iterables of identity names (or None). Every included name must exist.
    Entries that cannot be examined (a symbolic link loop, a folder without permission) are left
    out, and appended as (relative path, reason) to `skipped` when it is a list.
    """
    src = Path(src)
    skipped = [] if skipped is None else skipped
    if not src.is_dir():
        raise DataError(f"photo folder {src} not found; expected src/<identity>/<photo>.jpg")
    identities = []
    for e in os.scandir(src):
        if e.name.startswith("."):
            continue
        problem = _entry_problem(e, want_dir=True)
        if problem is None:
            identities.append(e.name)
        elif problem != "skip":
            skipped.append((e.name, problem))
    identities.sort()
    if not identities:
        raise DataError(f"{src} has no identity sub-folders; expected src/<identity>/<photo>.jpg")
    if include is not None:
        include = list(include)
        present = set(identities)
        missing = [n for n in include if n not in present]
        if missing:
            raise DataError(f"{len(missing)} of {len(include)} identities of the include list are not folders of "
                            f"{src} (first: {', '.join(missing[:3])}); check --src and the list")
        wanted = set(include)
        identities = [n for n in identities if n in wanted]
    if exclude is not None:
        drop = set(exclude)
        identities = [n for n in identities if n not in drop]
    out = []
    for name in identities:
        try:
            entries = list(os.scandir(src / name))
        except OSError as err:
            skipped.append((name, _os_reason(err)))
            continue
        files = []
        for e in entries:
            if not _is_image(e.name):
                continue
            problem = _entry_problem(e, want_dir=False)
            if problem is None:
                files.append(e.name)
            elif problem != "skip":
                skipped.append((f"{name}/{e.name}", problem))
        out.extend((name, f"{name}/{f}") for f in sorted(files))
    if not out:
        raise DataError(f"no photos ({', '.join(IMAGE_EXTENSIONS)}) in the selected identity folders of {src}")
    return out


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
    from .masks import MaskSynthesizer, rng_for

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
    from .align import read_landmarks_tsv

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


# ------------------------------------------------------------------------------------ pack
def _recordio_paths(out):
    out = Path(out)
    if out.suffix.lower() == ".rec":
        return out, out.with_suffix(".idx"), out.parent
    return out / "train.rec", out / "train.idx", out


def pack_folder(src, out, size=112, quality=95, force=False, progress=True):
    """Pack an aligned image folder src/<identity>/<face> into RecordIO (arcface_torch layout).

    out: a folder (gets train.rec, train.idx, property) or a .rec path (its .idx beside it).
    Faces must be size x size (align them first). Returns a summary dict: images, identities,
    rec, idx. A failed write (disk full, read-only, ...) is an OutputError and leaves no partial file.
    """
    from tqdm import tqdm

    from .folder import scan_image_folder
    from .recordio import IndexedRecordIOWriter, IRHeader, pack

    src = Path(src)
    items, identities, _ = scan_image_folder(src)
    rec_path, idx_path, folder = _recordio_paths(out)
    if rec_path.exists() and not force:
        raise DataError(f"{rec_path} exists; pass --force to overwrite it")
    n, c = len(items), len(identities)
    first = np.zeros(c + 1, np.int64)  # image keys of identity k: first[k] .. first[k+1]-1
    for _, label in items:
        first[label + 1] += 1
    first = 1 + np.cumsum(first)
    with write_errors(rec_path, idx_path, folder / "property"):
        if idx_path.exists():
            idx_path.unlink()  # never leave an old index next to a new .rec
        with IndexedRecordIOWriter(rec_path, idx_path) as writer:
            writer.write_idx(0, pack(IRHeader(0, [n + 1, n + 1 + c], 0, 0), b""))
            for key, (rel, label) in enumerate(tqdm(items, desc="packing", unit="img", disable=not progress,
                                                    dynamic_ncols=True), start=1):
                data = (src / rel).read_bytes()
                img, why = try_decode_image_bytes(data)
                if img is None:
                    raise DataError(f"cannot read face {src / rel}: {why}; replace or delete the file")
                if img.shape[:2] != (size, size):
                    raise DataError(f"{src / rel} is {img.shape[1]}x{img.shape[0]}, not an aligned {size}x{size} "
                                    "face: align the photos first (g2d-data align)")
                if not (data[:2] == b"\xff\xd8" or data[:8] == b"\x89PNG\r\n\x1a\n"):
                    data = encode_image_bytes(img, "jpg", quality)
                writer.write_idx(key, pack(IRHeader(0, float(label), key, 0), data))
            for k in range(c):
                writer.write_idx(n + 1 + k, pack(IRHeader(0, [int(first[k]), int(first[k + 1])], 0, 0), b""))
        with atomic_open(folder / "property", "w") as f:
            f.write(f"{c},{size},{size}\n")
    return {"images": n, "identities": c, "rec": str(rec_path), "idx": str(idx_path)}


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
        from .mask_styles import mask_style

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

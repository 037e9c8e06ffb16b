"""Real masked photos, end to end: photo -> front end -> aligned crop -> every model -> pair accuracy.

Input: an image root and the pairs files `g2d-eval make-pairs` writes (pairs_clean_clean.txt,
pairs_masked_clean.txt, pairs_masked_masked.txt; any subset). Every distinct photo is read once
and the face finder (the kit's front end by default) places it once; every model embeds those same
crops. A photo the finder cannot place is never dropped: it is counted per protocol, listed in
align_report.tsv, and used resized whole (the photos of real-mask sets are mostly face crops
already), or, with `unplaced="skip"`, its pairs are left out and counted.

The table gives each model's accuracy per protocol and the share of the reference model's mask gap
it recovers: (model masked - reference masked) / (reference clean - reference masked), for
masked-clean and masked-masked pairs (the reference is usually the teacher), and, for every other
model, its paired difference from the reference per protocol: the mean over folds of (model fold
accuracy - reference fold accuracy) with a 95 % paired-t interval over the folds (the folds are
person-disjoint, so they are the independent units; `paired_difference`).

Several pairs sets (e.g. `make-pairs --seed 0..4` of the same photos) can be given at once: every
photo of any set is placed and embedded once, each set is reported on its own, and the sets are
pooled: accuracy and difference are the means over the sets, and the pooled interval uses the mean
of the per-set standard errors with the per-set degrees of freedom (`pool_differences`). The sets
share their people, so their errors are not assumed independent: that interval is the one for fully
correlated sets, conservative whatever the correlation. Pooling steadies the estimate against the
draw of pairs; it cannot make 22 people more.
"""
import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..fileio import atomic_open, write_errors
from . import report

PAIRS_FILES = {"clean-clean": "pairs_clean_clean.txt", "masked-clean": "pairs_masked_clean.txt",
               "masked-masked": "pairs_masked_masked.txt"}
MASKED_PROTOCOLS = ("masked-clean", "masked-masked")
UNPLACED_CHOICES = ("resize", "skip")


def find_pairs_files(pairs_dir):
    """{protocol: path} of the pairs files present in `pairs_dir` (at least one)."""
    found = {p: os.path.join(pairs_dir, name) for p, name in PAIRS_FILES.items()
             if os.path.isfile(os.path.join(pairs_dir, name))}
    if not found:
        raise DataError(f"{pairs_dir!r} holds none of {', '.join(PAIRS_FILES.values())}; "
                        "write them with g2d-eval make-pairs --out DIR")
    return found


def paired_difference(model_folds, reference_folds, confidence=0.95):
    """Paired difference of two models' fold accuracies (same folds, same pairs).

    Returns dict(mean, low, high, se, df, folds, method): mean over folds of (model - reference),
    its standard error sd/sqrt(n) (sd with n - 1), and the two-sided Student-t interval with n - 1
    degrees of freedom (None bounds with fewer than two folds).
    """
    from scipy import stats

    a = np.asarray(model_folds, np.float64).reshape(-1)
    b = np.asarray(reference_folds, np.float64).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise DataError(f"paired difference needs the same folds for both models, got {a.size} and {b.size}")
    d = a - b
    n = d.size
    mean = float(d.mean())
    if n < 2:
        return dict(mean=mean, low=None, high=None, se=None, df=0, folds=n, method="paired t over folds")
    se = float(d.std(ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return dict(mean=mean, low=mean - half, high=mean + half, se=se, df=n - 1, folds=n,
                method="paired t over folds")


def pool_differences(per_set, confidence=0.95):
    """Pool paired differences of several pairs sets of the same people (`paired_difference` dicts).

    mean: the mean of the sets' means; se: the mean of their standard errors, the standard error of
    the pooled mean when the sets' errors are fully correlated (an upper bound whatever their
    correlation, as the sets share people); interval: Student t with the smallest per-set df.
    """
    from scipy import stats

    per_set = list(per_set)
    if not per_set:
        raise DataError("no pairs sets to pool")
    mean = float(np.mean([d["mean"] for d in per_set]))
    out = dict(mean=mean, low=None, high=None, se=None, df=min(d["df"] for d in per_set),
               folds=sum(d["folds"] for d in per_set), sets=len(per_set),
               method="mean of per-set paired t; se = mean of per-set se (sets share people: not assumed "
                      "independent)")
    if all(d["se"] is not None for d in per_set) and out["df"] >= 1:
        se = float(np.mean([d["se"] for d in per_set]))
        half = float(stats.t.ppf(0.5 + confidence / 2, out["df"])) * se
        out.update(se=se, low=mean - half, high=mean + half)
    return out


def gap_share(model, reference, protocol):
    """Share of the reference's mask gap that `model` recovers on `protocol` (None when no gap)."""
    gap = reference["clean-clean"] - reference[protocol]
    if gap <= 0:
        return None
    return (model[protocol] - reference[protocol]) / gap


def place_photos(root, rels, detector, progress=True, assume_cropped=False):
    """(crops uint8 [M, 112, 112, 3], report rows) for the photos `rels` under `root`: each found and
    aligned by the finder, or (unplaced) resized whole; report rows are dicts per photo.

    detector: a --detector value (faces.finders) or a FaceFinder object."""
    from tqdm import tqdm

    from ..data.align import align_face
    from ..faces.finders import build_finder, finder_spec
    from ..data.image_io import fit_square, read_image_file

    finder = detector if not isinstance(detector, str) else \
        build_finder(finder_spec(detector, assume_cropped=assume_cropped))
    crops = np.empty((len(rels), 112, 112, 3), dtype=np.uint8)
    rows = []
    for k, rel in enumerate(tqdm(rels, desc="finding faces", unit="photo", disable=not progress)):
        img = read_image_file(Path(root) / rel, hint="listed in the pairs files; replace the file")
        found = finder.find(img)
        placed = found.landmarks is not None
        crops[k] = align_face(img, found.landmarks, size=112) if placed else fit_square(img, 112)
        rows.append(dict(path=rel, placed=placed, outcome=found.outcome, score=found.score, faces=found.faces,
                         source=found.source, reason=found.reason, width=img.shape[1], height=img.shape[0]))
    return crops, rows


def _cached_crops(cache_path, root, detector):
    """{path: (crop, placed)} of the crops kept by an earlier run with the same root and detector
    (None when there is none or it is unreadable)."""
    if not os.path.isfile(cache_path):
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as z:
            if str(z["root"]) != str(root) or str(z["detector"]) != str(detector):
                return None
            crops, placed = z["crops"], z["placed"]
            return {p: (crops[i], bool(placed[i])) for i, p in enumerate(z["paths"].tolist())}
    except (OSError, ValueError, KeyError):
        return None


def _read_align_report(path):
    """{path: row dict (text values)} of an align_report.tsv ({} when absent or unreadable)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    if not lines:
        return {}
    cols = lines[0].split("\t")
    rows = {}
    for line in lines[1:]:
        row = dict(zip(cols, line.split("\t")))
        if "path" in row:
            rows[row["path"]] = row
    return rows


def _digest(crops):
    return hashlib.sha1(np.ascontiguousarray(crops).data).hexdigest()


def _embedding_file(out_dir, spec, flip, crops_digest):
    """Where a model's embeddings of these crops are kept: named by the spec, its file's size and
    time, the flip setting and the crops' digest (None for a model given as an object)."""
    if not isinstance(spec, (str, os.PathLike)):
        return None
    spec = os.fspath(spec)
    path = spec.split(":", 1)[-1]
    stamp = f"{spec}|{flip}"
    if os.path.isfile(path):
        st = os.stat(path)
        stamp += f"|{st.st_size}|{st.st_mtime_ns}"
    stamp += "|" + crops_digest
    return os.path.join(out_dir, "embeddings", hashlib.sha1(stamp.encode()).hexdigest()[:20] + ".npy")


def write_align_report(path, rows):
    cols = ("path", "placed", "outcome", "score", "faces", "source", "reason", "width", "height")
    lines = ["\t".join(cols)]
    for r in rows:
        lines.append("\t".join("" if r.get(c) is None else
                               (f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c))).replace("\t", " ")
                               for c in cols))
    return report.write_text(path, "\n".join(lines) + "\n")


def _set_labels(pairs_sets, labels):
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != len(pairs_sets) or len(set(labels)) != len(labels):
            raise ConfigError(f"give {len(pairs_sets)} distinct pairs-set labels, got {labels}")
        return labels
    names = []
    for files in pairs_sets:
        folder = os.path.dirname(os.path.abspath(next(iter(files.values()))))
        names.append(os.path.basename(folder) or folder)
    if len(set(names)) != len(names):
        names = [f"set{i}" for i in range(len(pairs_sets))]
    return names


def evaluate_real_masks(models, root, pairs_files, detector="g2d", reference=None, flip=False, out_dir=None,
                        unplaced="resize", batch_size=64, device="cpu", progress=True, log=print,
                        assume_cropped=False, set_labels=None):
    """{model label: {protocol: metrics json}} plus the table, for real masked photos end to end.

    models: [(label, spec)] as `embedders.factory.build_embedder` takes; pairs_files {protocol: path}
    (find_pairs_files), or a list of such dicts, one per pairs set (e.g. make-pairs seeds) of photos
    under the same root; reference: label whose mask gap the shares and paired differences are
    measured against (default: the first model); assume_cropped: every photo is one face crop (the
    g2d front end's option); set_labels: a name per pairs set (default: their folders' names).
    Writes real_masks.md, real_masks.json, real_masks_paired.tsv, align_report.tsv and crops.npz
    (the placed crops, reused and extended by later runs with the same root and detector) to
    out_dir, and each model's embeddings of them (embeddings/, reused while the model file and the
    crops are unchanged).

    With one pairs set, doc["results"] and doc["paired"] are that set's; with several, they are
    pooled over the sets (accuracy: mean of the sets' accuracies; paired: `pool_differences`) and
    doc["sets"] holds each set's own results, paired differences and counts.
    """
    from ..embedders.factory import build_embedder
    from .model_spec import unique_labels
    from .pairs import read_pairs, resolve_paths

    if unplaced not in UNPLACED_CHOICES:
        raise ConfigError(f"unplaced={unplaced!r}: use one of {', '.join(UNPLACED_CHOICES)}")
    models = list(models)
    if not models:
        raise ConfigError("no models; give at least one --model")
    labels = [label for label, _ in models]
    unique_labels(labels)
    reference = labels[0] if reference is None else reference
    if reference not in labels:
        raise ConfigError(f"--reference {reference!r} is not one of the models ({', '.join(labels)})")
    pairs_sets = [pairs_files] if isinstance(pairs_files, dict) else list(pairs_files)
    if not pairs_sets or not all(isinstance(f, dict) and f for f in pairs_sets):
        raise ConfigError("pairs_files: a {protocol: path} dict or a list of them (one per pairs set)")
    names = _set_labels(pairs_sets, set_labels)
    embedders = {label: build_embedder(spec, device=device) for label, spec in models}  # fail before any data
    set_lists, base = [], None
    for files in pairs_sets:
        lists = {}
        for protocol, path in files.items():
            pairs = read_pairs(path)
            set_base, pairs.paths = resolve_paths(root, pairs)
            if base is not None and str(set_base) != str(base):
                raise DataError(f"{path}: its photos are under {set_base}, another set's under {base}; "
                                "give pairs sets of the same photos (one --root)")
            base = set_base
            lists[protocol] = pairs
        set_lists.append(lists)
    rels = sorted({p for lists in set_lists for pl in lists.values() for p in pl.paths})
    crops, rows = _place_with_cache(out_dir, base, rels, detector, progress, assume_cropped, log)
    stamp = f"{detector} assume_cropped" if assume_cropped else detector
    position = {p: i for i, p in enumerate(rels)}
    placed = np.array([r["placed"] for r in rows], dtype=bool)
    keep_cache = bool(out_dir) and isinstance(detector, str)
    digest = _digest(crops) if keep_cache else None
    embeddings = {}
    for (label, spec), embedder in zip(models, embedders.values()):
        stored = _embedding_file(out_dir, spec, flip, digest) if keep_cache else None
        if stored and os.path.isfile(stored):
            embeddings[label] = np.load(stored, allow_pickle=False)
            continue
        embeddings[label] = embedder.embed_images(crops, batch_size, flip, progress, desc=label)
        if stored:
            with write_errors(out_dir):
                report.write_npy(stored, embeddings[label])
    sets = []
    for name, files, lists in zip(names, pairs_sets, set_lists):
        results, counts = _score_set(lists, labels, embeddings, position, placed, unplaced)
        sets.append(dict(label=name, pairs_files={p: str(f) for p, f in files.items()}, counts=counts,
                         results=results, paired=_paired(results, labels, reference)))
    protocols = [p for p in PAIRS_FILES if all(p in st["counts"] for st in sets)]
    if len(sets) == 1:
        results, paired, counts = sets[0]["results"], sets[0]["paired"], sets[0]["counts"]
    else:
        results = {label: {p: _pooled_metrics([st["results"][label][p] for st in sets]) for p in protocols}
                   for label in labels}
        paired = {label: {p: pool_differences([st["paired"][label][p] for st in sets]) for p in protocols}
                  for label in labels if label != reference}
        counts = {p: dict(pairs=sum(st["counts"][p]["pairs"] for st in sets),
                          pairs_with_unplaced_photo=sum(st["counts"][p]["pairs_with_unplaced_photo"] for st in sets),
                          photos=len({q for lists in set_lists for q in lists[p].paths}),
                          unplaced_photos=int(sum(not placed[position[q]]
                                                  for q in {q for lists in set_lists for q in lists[p].paths})))
                  for p in protocols}
    doc = dict(root=str(base), detector=str(stamp), flip=bool(flip), unplaced=unplaced, reference=reference,
               models=[dict(label=label, spec=str(spec)) for label, spec in models],
               pairs_files=sets[0]["pairs_files"] if len(sets) == 1 else [st["pairs_files"] for st in sets],
               counts=counts, results=results, paired=paired,
               photos=dict(total=len(rels), placed=int(placed.sum())))
    if len(sets) > 1:
        doc["sets"] = sets
    doc["markdown"] = real_masks_markdown(doc)
    if out_dir:
        with write_errors(out_dir):
            report.write_text(os.path.join(out_dir, "real_masks.md"), doc["markdown"])
            report.write_json(os.path.join(out_dir, "real_masks.json"), doc)
            report.write_text(os.path.join(out_dir, "real_masks_paired.tsv"), paired_tsv(doc))
    return doc


def _place_with_cache(out_dir, base, rels, detector, progress, assume_cropped, log):
    """(crops, rows) of `rels`: from crops.npz where an earlier run placed them, the rest placed now
    (the cache and align_report.tsv are then rewritten with every photo placed so far)."""
    cache_path = os.path.join(out_dir, "crops.npz") if out_dir and isinstance(detector, str) else None
    stamp = f"{detector} assume_cropped" if assume_cropped else detector
    cached = (_cached_crops(cache_path, base, stamp) if cache_path else None) or {}
    missing = [r for r in rels if r not in cached]
    if cached and not missing:
        log(f"reusing the crops of {len(rels)} photos in {cache_path}")
        return (np.stack([cached[r][0] for r in rels]) if rels else np.empty((0, 112, 112, 3), np.uint8),
                [dict(path=r, placed=cached[r][1]) for r in rels])
    if cached:
        log(f"reusing the crops of {len(rels) - len(missing)} photos in {cache_path}; placing {len(missing)} more")
    new_crops, new_rows = place_photos(base, missing, detector, progress, assume_cropped=assume_cropped)
    fresh = {r: (c, row["placed"]) for r, c, row in zip(missing, new_crops, new_rows)}
    everything = {**cached, **fresh}
    crops = np.stack([everything[r][0] for r in rels]) if rels else new_crops
    rows = [dict(path=r, placed=everything[r][1]) for r in rels]
    if out_dir:
        report_path = os.path.join(out_dir, "align_report.tsv")
        known = _read_align_report(report_path) if cached else {}
        known.update({row["path"]: row for row in new_rows})
        with write_errors(out_dir):
            write_align_report(report_path, [known[p] for p in sorted(known)])
    if cache_path:
        paths = sorted(everything)
        with write_errors(out_dir):
            with atomic_open(cache_path) as f:
                np.savez(f, root=str(base), detector=str(stamp), paths=np.array(paths),
                         crops=np.stack([everything[p][0] for p in paths]),
                         placed=np.array([everything[p][1] for p in paths]))
    return crops, rows


def _score_set(lists, labels, embeddings, position, placed, unplaced):
    """({model: {protocol: metrics json}}, {protocol: counts}) of one pairs set."""
    from .verification import metrics_to_json, verification_metrics

    results, counts = {label: {} for label in labels}, {}
    for protocol, pairs in lists.items():
        idx = np.array([position[p] for p in pairs.paths], dtype=np.int64)
        ok = placed[idx].reshape(-1, 2).all(axis=1)
        keep = ok if unplaced == "skip" else np.ones(len(ok), dtype=bool)
        counts[protocol] = dict(pairs=int(keep.sum()), pairs_with_unplaced_photo=int((~ok).sum()),
                                photos=len(set(pairs.paths)),
                                unplaced_photos=int((~placed[np.unique(idx)]).sum()))
        pair_idx = idx.reshape(-1, 2)[keep].reshape(-1)
        folds = None if pairs.folds is None else pairs.folds[keep]
        for label in labels:
            m = verification_metrics(embeddings[label][pair_idx], pairs.issame[keep], folds=folds)
            results[label][protocol] = metrics_to_json(m)
    return results, counts


def _paired(results, labels, reference):
    """{model: {protocol: paired_difference}} against the reference, for every other model."""
    return {label: {p: paired_difference(results[label][p]["fold_accuracies"],
                                         results[reference][p]["fold_accuracies"])
                    for p in results[reference]}
            for label in labels if label != reference}


def _pooled_metrics(per_set):
    """Accuracy of several pairs sets: the mean of their accuracies, the std of all their folds."""
    folds = np.concatenate([np.asarray(m["fold_accuracies"], np.float64) for m in per_set])
    return dict(accuracy=float(np.mean([m["accuracy"] for m in per_set])), accuracy_std=float(folds.std()),
                set_accuracies=[float(m["accuracy"]) for m in per_set], num_pairs=sum(m["num_pairs"] for m in per_set))


def _fmt_diff(d):
    """+2.35 [+0.51, +4.19] (percentage points)."""
    def pts(v):  # no "-0.00": a difference that rounds to zero prints as +0.00
        text = f"{100 * v:+.2f}"
        return "+0.00" if text == "-0.00" else text

    if d["low"] is None:
        return pts(d["mean"])
    return f"{pts(d['mean'])} [{pts(d['low'])}, {pts(d['high'])}]"


def paired_tsv(doc):
    """Tab-separated paired differences: one row per (pairs set or 'pooled', model, protocol)."""
    cols = ("set", "model", "reference", "protocol", "accuracy", "reference_accuracy", "difference",
            "ci95_low", "ci95_high", "se", "df", "folds", "method")
    lines = ["\t".join(cols)]
    blocks = [(st["label"], st["results"], st["paired"]) for st in doc.get("sets", [])]
    blocks.append(("pooled" if doc.get("sets") else "all", doc["results"], doc["paired"]))
    ref = doc["reference"]

    def num(v):
        return "" if v is None else f"{v:.6f}"

    for name, results, paired in blocks:
        for label, per in paired.items():
            for p, d in per.items():
                lines.append("\t".join([name, label, ref, p, num(results[label][p]["accuracy"]),
                                        num(results[ref][p]["accuracy"]), num(d["mean"]), num(d["low"]),
                                        num(d["high"]), num(d["se"]), str(d["df"]), str(d["folds"]), d["method"]]))
    return "\n".join(lines) + "\n"


def real_masks_markdown(doc):
    protocols = [p for p in PAIRS_FILES if p in doc["counts"]]
    acc = {label: {p: per[p]["accuracy"] for p in protocols} for label, per in doc["results"].items()}
    reference = doc["reference"]
    ref = acc[reference]
    shares = [p for p in MASKED_PROTOCOLS if p in protocols and "clean-clean" in protocols]
    sets = doc.get("sets") or []
    header = ["model"] + protocols + [f"{p} gap recovered" for p in shares]
    rows = []
    for label, per in doc["results"].items():
        row = [label] + [report.fmt_percent(per[p]["accuracy"], per[p]["accuracy_std"]) for p in protocols]
        for p in shares:
            share = gap_share(acc[label], ref, p)
            row.append("–" if share is None or label == reference else f"{100 * share:.0f} %")
        rows.append(row)
    photos = doc["photos"]
    if sets:
        what = (f"mean over {len(sets)} pairs sets ({', '.join(st['label'] for st in sets)}) ± std over all their "
                "person-disjoint folds")
    else:
        what = "mean ± std over the pairs files' person-disjoint folds"
    lines = [
        f"Real masked photos, end to end (detector {doc['detector']}): verification accuracy (%, {what})"
        f"{', flip added' if doc['flip'] else ', no flip'}.\n",
        report.markdown_table(header, rows),
        "",
        f"Gap recovered: (model masked − {reference} masked) / ({reference} clean − "
        f"{reference} masked). Photos: {photos['total']}, placed by the front end: {photos['placed']} "
        f"({'others resized whole' if doc['unplaced'] == 'resize' else 'pairs with others left out'}).",
    ]
    for p in protocols:
        c = doc["counts"][p]
        lines.append(f"- {p}: {c['pairs']} pairs of {c['photos']} photos; {c['unplaced_photos']} photo(s) not placed, "
                     f"in {c['pairs_with_unplaced_photo']} pair(s)")
    paired = doc.get("paired") or {}
    if paired:
        lines += ["", f"Paired difference from {reference} (percentage points): mean over folds of (model − "
                      f"{reference}) fold accuracy, [95 % interval]"
                      + (", pooled over the pairs sets: mean of the sets' differences, interval from the mean of "
                         "their standard errors (the sets share people, so they are not taken as independent; "
                         "conservative)." if sets else ", paired t over the pairs files' folds (person-disjoint "
                         "in make-pairs files).") + "\n",
                  report.markdown_table(["model"] + protocols,
                                        [[label] + [_fmt_diff(per[p]) for p in protocols]
                                         for label, per in paired.items()])]
    if sets:
        lines += ["", f"Per pairs set: accuracy (%) and paired difference from {reference} "
                      "(points, [95 % paired-t interval over its folds]).\n"]
        set_rows = []
        for st in sets:
            for label in doc["results"]:
                cells = []
                for p in protocols:
                    cell = report.fmt_percent(st["results"][label][p]["accuracy"])
                    if label in st["paired"]:
                        cell += f" ({_fmt_diff(st['paired'][label][p])})"
                    cells.append(cell)
                set_rows.append([st["label"], label] + cells)
        lines.append(report.markdown_table(["pairs set", "model"] + protocols, set_rows))
    return "\n".join(lines) + "\n"

"""Real masked photos, end to end: photo -> front end -> aligned crop -> every model -> pair accuracy.

Input: an image root and the pairs files `g2d-eval make-pairs` writes (pairs_clean_clean.txt,
pairs_masked_clean.txt, pairs_masked_masked.txt; any subset). Every distinct photo is read once
and the face finder (the kit's front end by default) places it once; every model embeds those same
crops. A photo the finder cannot place is never dropped: it is counted per protocol, listed in
align_report.tsv, and used resized whole (the photos of real-mask sets are mostly face crops
already), or, with `unplaced="skip"`, its pairs are left out and counted.

The table gives each model's accuracy per protocol and the share of the reference model's mask gap
it recovers: (model masked - reference masked) / (reference clean - reference masked), for
masked-clean and masked-masked pairs (the reference is usually the teacher).
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


def gap_share(model, reference, protocol):
    """Share of the reference's mask gap that `model` recovers on `protocol` (None when no gap)."""
    gap = reference["clean-clean"] - reference[protocol]
    if gap <= 0:
        return None
    return (model[protocol] - reference[protocol]) / gap


def place_photos(root, rels, detector, progress=True, assume_cropped=False):
    """(crops uint8 [M, 112, 112, 3], report rows) for the photos `rels` under `root`: each found and
    aligned by the finder, or (unplaced) resized whole; report rows are dicts per photo.

    detector: a --detector value (data.finders) or a FaceFinder object."""
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


def _cached_crops(cache_path, root, rels, detector):
    if not os.path.isfile(cache_path):
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as z:
            if str(z["root"]) != str(root) or str(z["detector"]) != str(detector):
                return None
            index = {p: i for i, p in enumerate(z["paths"].tolist())}
            if not all(r in index for r in rels):
                return None
            take = np.array([index[r] for r in rels], dtype=np.int64)
            return z["crops"][take], [dict(path=r, placed=bool(z["placed"][index[r]])) for r in rels]
    except (OSError, ValueError, KeyError):
        return None


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


def evaluate_real_masks(models, root, pairs_files, detector="g2d", reference=None, flip=False, out_dir=None,
                        unplaced="resize", batch_size=64, device="cpu", progress=True, log=print,
                        assume_cropped=False):
    """{model label: {protocol: metrics json}} plus the table, for real masked photos end to end.

    models: [(label, spec)] as `embedders.factory.build_embedder` takes; pairs_files {protocol: path}
    (find_pairs_files); reference: label whose mask gap the shares are measured against (default:
    the first model); assume_cropped: every photo is one face crop (the g2d front end's option). Writes real_masks.md, real_masks.json, align_report.tsv and crops.npz (the
    placed crops, reused by a later run with the same root and detector) to out_dir, and each
    model's embeddings of them (embeddings/, reused while the model file and the crops are unchanged).
    """
    from ..embedders.factory import build_embedder
    from .model_spec import unique_labels
    from .pairs import read_pairs, resolve_paths
    from .verification import metrics_to_json, verification_metrics

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
    embedders = {label: build_embedder(spec, device=device) for label, spec in models}  # fail before any data
    pair_lists = {}
    for protocol, path in pairs_files.items():
        pairs = read_pairs(path)
        base, pairs.paths = resolve_paths(root, pairs)
        pair_lists[protocol] = pairs
    rels = sorted({p for pl in pair_lists.values() for p in pl.paths})
    cache_path = os.path.join(out_dir, "crops.npz") if out_dir and isinstance(detector, str) else None
    stamp = f"{detector} assume_cropped" if assume_cropped else detector
    cached = _cached_crops(cache_path, base, rels, stamp) if cache_path else None
    if cached is not None:
        crops, rows = cached
        log(f"reusing the crops of {len(rels)} photos in {cache_path}")
    else:
        crops, rows = place_photos(base, rels, detector, progress, assume_cropped=assume_cropped)
        if out_dir:
            with write_errors(out_dir):
                write_align_report(os.path.join(out_dir, "align_report.tsv"), rows)
        if cache_path:
            with write_errors(out_dir):
                with atomic_open(cache_path) as f:
                    np.savez(f, root=str(base), detector=str(stamp), paths=np.array(rels), crops=crops,
                             placed=np.array([r["placed"] for r in rows]))
    position = {p: i for i, p in enumerate(rels)}
    placed = np.array([r["placed"] for r in rows], dtype=bool)
    results, counts = {label: {} for label in labels}, {}
    embeddings = {}
    digest = _digest(crops) if cache_path else None
    for (label, spec), embedder in zip(models, embedders.values()):
        stored = _embedding_file(out_dir, spec, flip, digest) if cache_path else None
        if stored and os.path.isfile(stored):
            embeddings[label] = np.load(stored, allow_pickle=False)
            continue
        embeddings[label] = embedder.embed_images(crops, batch_size, flip, progress, desc=label)
        if stored:
            with write_errors(out_dir):
                report.write_npy(stored, embeddings[label])
    for protocol, pairs in pair_lists.items():
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
    doc = dict(root=str(base), detector=str(stamp), flip=bool(flip), unplaced=unplaced, reference=reference,
               models=[dict(label=label, spec=str(spec)) for label, spec in models],
               pairs_files={p: str(f) for p, f in pairs_files.items()}, counts=counts, results=results,
               photos=dict(total=len(rels), placed=int(placed.sum())))
    doc["markdown"] = real_masks_markdown(doc)
    if out_dir:
        with write_errors(out_dir):
            report.write_text(os.path.join(out_dir, "real_masks.md"), doc["markdown"])
            report.write_json(os.path.join(out_dir, "real_masks.json"), doc)
    return doc


def real_masks_markdown(doc):
    protocols = [p for p in PAIRS_FILES if p in doc["counts"]]
    acc = {label: {p: per[p]["accuracy"] for p in protocols} for label, per in doc["results"].items()}
    ref = acc[doc["reference"]]
    shares = [p for p in MASKED_PROTOCOLS if p in protocols and "clean-clean" in protocols]
    header = ["model"] + protocols + [f"{p} gap recovered" for p in shares]
    rows = []
    for label, per in doc["results"].items():
        row = [label] + [report.fmt_percent(per[p]["accuracy"], per[p]["accuracy_std"]) for p in protocols]
        for p in shares:
            share = gap_share(acc[label], ref, p)
            row.append("–" if share is None or label == doc["reference"] else f"{100 * share:.0f} %")
        rows.append(row)
    photos = doc["photos"]
    lines = [
        f"Real masked photos, end to end (detector {doc['detector']}): verification accuracy (%, mean ± std over "
        f"the pairs files' person-disjoint folds){', flip added' if doc['flip'] else ', no flip'}.\n",
        report.markdown_table(header, rows),
        "",
        f"Gap recovered: (model masked − {doc['reference']} masked) / ({doc['reference']} clean − "
        f"{doc['reference']} masked). Photos: {photos['total']}, placed by the front end: {photos['placed']} "
        f"({'others resized whole' if doc['unplaced'] == 'resize' else 'pairs with others left out'}).",
    ]
    for p in protocols:
        c = doc["counts"][p]
        lines.append(f"- {p}: {c['pairs']} pairs of {c['photos']} photos; {c['unplaced_photos']} photo(s) not placed, "
                     f"in {c['pairs_with_unplaced_photo']} pair(s)")
    return "\n".join(lines) + "\n"

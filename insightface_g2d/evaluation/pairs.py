"""Verification on image folders with a pairs list (LFW, MLFW, MFR2, RMFD-style sets).

Two pairs-file layouts are read (`layout="auto"` tells them apart line by line):

LFW layout (LFW's pairs.txt / pairsDevTrain.txt / pairsDevTest.txt, MFR2's pairs.txt)
  optional header: "10<TAB>300" (10 folds, each 300 matched then 300 mismatched pairs) or a single
  N (pairsDev*: N matched then N mismatched pairs); then one pair per line, fields separated by
  tabs or spaces:
      name  n1  n2            matched:    name/name_{n1:04d}.jpg, name/name_{n2:04d}.jpg
      name1 n1  name2 n2      mismatched: name1/name1_{n1:04d}.jpg, name2/name2_{n2:04d}.jpg
  The extension is found on disk (.jpg, .png, .jpeg, .bmp in that order) unless given.
  Folds: "K P" header -> the file's K folds (LFW's official 10-fold protocol); "N" header ->
  balanced folds (`verification.balanced_fold_ids`: matched pair j and mismatched pair j share a
  fold, N / 10 of each per fold when 10 divides N); no header (MFR2) -> 10 contiguous folds, as
  for a .bin (balanced ones when a contiguous fold would hold one class only).

Generic layout (MLFW's pairs.txt, hand-made lists for RMFD or any folder)
      path1  path2  label  [fold]
  paths relative to the image root; separator: tab if the line has one, else comma if it has
  one, else runs of spaces (so paths with spaces need tabs or commas); label 1/0, true/false,
  same/diff(erent); an optional 4th integer column is the fold. A first line whose label does
  not parse and whose first two fields are not image file names (a CSV header) is skipped.
  MLFW: pairs.txt is already `img1<TAB>img2<TAB>label` with paths relative to its aligned-image
  folder: pass that folder as the root, no landmarks (the faces are aligned 112x112).
  MFR2: pairs.txt is LFW layout without a header, images mfr2/<name>/<name>_NNNN.png: pass the
  mfr2 folder as the root. RMFD has no official pairs list: write `path1 path2 label` lines.

Images are aligned onto the ArcFace template with `align_face` when a landmarks TSV is given
(`path<TAB>x1<TAB>y1 ... x5<TAB>y5`, paths relative to the image root, as LFW's
landmarks5.tsv), else used as they are: they must then be aligned 112x112 crops (other sizes are
refused unless `resize=True` / `--resize` says they are aligned crops of another size).
"""
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.image_io import fit_square, read_image_file
from ..errors import DataError
from .verification import balanced_fold_ids

IMAGE_EXTS = (".jpg", ".png", ".jpeg", ".bmp")
_TRUE = {"1", "true", "same", "yes", "match", "matched", "positive", "pos"}
_FALSE = {"0", "false", "diff", "different", "no", "mismatch", "mismatched", "negative", "neg", "-1"}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class PairList:
    """Pairs read from a pairs file: image i of pair p is paths[2p + i] (relative to the root)."""

    paths: list
    issame: np.ndarray  # bool [N]
    folds: object = None  # int [N] fold label per pair, or None for contiguous folds
    layout: str = "generic"
    source: str = ""

    def __len__(self):
        return len(self.issame)

    def subset(self, pair_indices):
        idx = np.asarray(pair_indices, dtype=np.int64)
        paths = [self.paths[2 * i + j] for i in idx for j in (0, 1)]
        folds = None if self.folds is None else self.folds[idx]
        return PairList(paths, self.issame[idx], folds, self.layout, self.source)

    def take_per_fold(self, n, folds=None):
        """A quick subset: up to n pairs from each fold (half matched, half mismatched, file order).

        folds: fold labels to keep (default all); needs per-pair folds.
        """
        fold_ids = self.folds if self.folds is not None else np.zeros(len(self), dtype=np.int64)
        keep = []
        for f in np.unique(fold_ids) if folds is None else folds:
            in_fold = fold_ids == f
            pos = np.nonzero(in_fold & self.issame)[0][: (n + 1) // 2]
            neg = np.nonzero(in_fold & ~self.issame)[0][: n // 2]
            keep.extend(sorted(np.r_[pos, neg].tolist()))
        return self.subset(keep)


def _is_int(tok):
    try:
        int(tok)
        return True
    except ValueError:
        return False


def _label(tok):
    t = tok.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def _split(line):
    if "\t" in line:
        return [t.strip() for t in line.split("\t") if t.strip() != ""]
    if "," in line:
        return [t.strip() for t in line.split(",")]
    return line.split()


def _norm_ext(ext):
    """'png' or '.png' -> '.png'; None stays None."""
    if not ext:
        return None
    return ext if ext.startswith(".") else "." + ext


def _lfw_path(name, number, ext):
    return f"{name}/{name}_{int(number):04d}{ext}"


def read_pairs(path, layout="auto", image_ext=None, nfolds=10):
    """Parse a pairs file (see module doc) -> PairList with paths relative to the image root.

    image_ext: extension for LFW-layout names (None: '.jpg' placeholder, resolved on disk later).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pairs file not found: {path}")
    try:
        lines = [(n, ln.rstrip("\r\n")) for n, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read pairs file {path}: {err}") from None
    lines = [(n, ln) for n, ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{path}: no pairs in the file")
    if layout not in ("auto", "lfw", "generic"):
        raise DataError(f"unknown pairs layout {layout!r}; use auto, lfw or generic")

    header = None
    first = _split(lines[0][1])
    if 1 <= len(first) <= 2 and all(_is_int(t) for t in first):
        header = [int(t) for t in first]
        lines = lines[1:]
    ext = _norm_ext(image_ext) or ".jpg"
    paths, issame, folds, kinds = [], [], [], set()
    for k, (lineno, line) in enumerate(lines):
        tok = _split(line)
        lfw_match = len(tok) == 3 and _is_int(tok[1]) and _is_int(tok[2])
        lfw_mismatch = len(tok) == 4 and _is_int(tok[1]) and _is_int(tok[3]) and not _is_int(tok[2])
        if layout != "generic" and (lfw_match or lfw_mismatch):
            kinds.add("lfw")
            if lfw_match:
                paths += [_lfw_path(tok[0], tok[1], ext), _lfw_path(tok[0], tok[2], ext)]
                issame.append(True)
            else:
                paths += [_lfw_path(tok[0], tok[1], ext), _lfw_path(tok[2], tok[3], ext)]
                issame.append(False)
            folds.append(None)
            continue
        if layout != "lfw" and len(tok) in (3, 4) and _label(tok[2]) is not None:
            if len(tok) == 4 and not _is_int(tok[3]):
                raise DataError(f"{path}:{lineno}: 4th column must be an integer fold, got {tok[3]!r}")
            fold = int(tok[3]) if len(tok) == 4 else None
            if fold is not None and not _INT64_MIN <= fold <= _INT64_MAX:
                raise DataError(f"{path}:{lineno}: fold {tok[3][:30]!r} is out of range; "
                                "the 4th column must be a fold number such as 0..9")
            kinds.add("generic")
            paths += [tok[0].replace("\\", "/"), tok[1].replace("\\", "/")]
            issame.append(_label(tok[2]))
            folds.append(fold)
            continue
        if k == 0 and header is None and layout != "lfw" and len(tok) in (3, 4) and not any(
                os.path.splitext(t)[1].lower() in IMAGE_EXTS for t in tok[:2]):
            continue  # a CSV header such as "path1,path2,label"
        want = {"lfw": "'name n1 n2' or 'name1 n1 name2 n2'", "generic": "'path1 path2 label [fold]'"}
        expected = want.get(layout, f"{want['lfw']} (LFW layout) or {want['generic']}")
        raise DataError(f"{path}:{lineno}: cannot parse pair line {line[:100]!r}; expected {expected}")
    if len(kinds) > 1:
        raise DataError(f"{path}: mixes LFW-style and 'path1 path2 label' lines; use one layout per file")
    if not issame:
        raise DataError(f"{path}: no pairs in the file")
    issame = np.asarray(issame, dtype=bool)
    kind = kinds.pop()
    fold_ids = _folds_from_header(path, header, issame, nfolds) if kind == "lfw" else None
    if kind == "generic" and any(f is not None for f in folds):
        if any(f is None for f in folds):
            raise DataError(f"{path}: some lines have a fold column and some do not")
        fold_ids = np.asarray(folds, dtype=np.int64)
    return PairList(paths, issame, fold_ids, kind, str(path))


def _folds_from_header(path, header, issame, nfolds):
    n = len(issame)
    if header is None:
        return None
    if any(v < 1 for v in header):
        raise DataError(f"{path}: header {' '.join(map(str, header))!r}: the counts must be >= 1 "
                        "(LFW's 'folds pairs_per_fold', e.g. '10 300', or the number of matched pairs)")
    if len(header) == 2:
        k, per = header
        if k * 2 * per != n:
            raise DataError(f"{path}: header says {k} folds x {per} matched + {per} mismatched pairs "
                            f"= {k * 2 * per} pairs, the file has {n}")
        expect = np.tile(np.r_[np.ones(per, bool), np.zeros(per, bool)], k)
        if not np.array_equal(expect, issame):
            raise DataError(f"{path}: each fold must list {per} matched then {per} mismatched pairs")
        return np.repeat(np.arange(k), 2 * per)
    (m,) = header
    if 2 * m != n:
        raise DataError(f"{path}: header says {m} matched + {m} mismatched pairs, the file has {n} pairs")
    if 2 * m < nfolds:
        return None  # too few pairs for the folds: verification_metrics says so
    return balanced_fold_ids(issame, nfolds)


# ---------------------------------------------------------------- images


def _find_root(root, rel):
    """The folder holding the pairs' images: root itself or one of its direct subfolders
    (so both LFW's top folder and its lfw-deepfunneled/ work)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image root {root} is not a folder")
    stem = os.path.splitext(rel)[0]

    def found(cand):
        for ext in (os.path.splitext(rel)[1],) + IMAGE_EXTS:
            if (cand / (stem + ext)).is_file():
                return ext
        return None

    ext = found(root)
    if ext:
        return root, ext
    for cand in sorted(p for p in root.iterdir() if p.is_dir()):
        ext = found(cand)
        if ext:
            return cand, ext
    return root, None


def _leaves_root(rel):
    """True for an absolute path or one with a '..' component (it could name any file)."""
    rel = str(rel).replace("\\", "/")
    return os.path.isabs(rel) or rel.startswith("/") or ".." in rel.split("/") or (len(rel) > 1 and rel[1] == ":")


def resolve_paths(root, pairs, image_ext=None):
    """(image folder, list of 2N relative paths with their real extension); DataError on missing."""
    image_ext = _norm_ext(image_ext)
    outside = [p for p in pairs.paths if _leaves_root(p)]
    if outside:
        raise DataError(
            f"{len(outside)} path(s) of {pairs.source or 'the pairs list'} leave the image root "
            f"(first: {outside[0]!r}); "
            "paths in a pairs file must be relative to --root, without '..' or a leading '/'")
    base, found_ext = _find_root(root, pairs.paths[0])
    paths = list(pairs.paths)
    if pairs.layout == "lfw" and image_ext is None and found_ext and found_ext != ".jpg":
        paths = [os.path.splitext(p)[0] + found_ext for p in paths]
    elif pairs.layout == "lfw" and image_ext:
        paths = [os.path.splitext(p)[0] + image_ext for p in paths]
    missing = sorted({p for p in paths if not (base / p).is_file()})
    if missing:
        shown = ", ".join(missing[:5])
        raise DataError(
            f"{len(missing)} image(s) of {pairs.source or 'the pairs list'} not found under {base} "
            f"(first: {shown}); check --root (the folder holding the images) and the pairs file"
        )
    return base, paths


def load_pair_images(root, pairs, landmarks=None, image_size=112, image_ext=None, workers=None, progress=False,
                     resize=False, detector=None):
    """Read, align and stack the images of `pairs`: uint8 [2N, image_size, image_size, 3] RGB.

    landmarks: None, a dict {relative path: [5, 2]} or a path to a landmarks TSV. Each distinct
    image is read once. Without landmarks the images must be aligned image_size crops: other
    sizes (e.g. LFW's 250x250 photos) are refused unless resize=True says they are aligned crops
    of another size, or detector (a data.finders --detector value, e.g. "g2d") finds each face:
    photos where it finds none are used resized whole (a note on stderr counts them).
    """
    from ..data.align import align_face
    from ..faces.landmarks import LandmarkIndex

    base, paths = resolve_paths(root, pairs, image_ext)
    unique = sorted(set(paths))
    if landmarks is None and detector is not None:
        landmarks = _found_landmarks(base, unique, detector, progress)
    if landmarks is not None:
        index = LandmarkIndex(landmarks)
        found = {p: index.find(base / p, base) for p in unique}
        lacking = [p for p, lmk in found.items() if lmk is None]
        if lacking and detector is None:
            raise DataError(f"{len(lacking)} image(s) have no landmarks in the landmarks file "
                            f"(first: {', '.join(lacking[:5])}); paths must be relative to {base}")
    cache = {}
    missing = set() if landmarks is None else {p for p in unique if found.get(p) is None}

    def read(rel):
        img = read_image_file(base / rel, hint=f"listed in {pairs.source or 'the pairs list'}; replace the file")
        if landmarks is not None and rel not in missing:
            img = align_face(img, found[rel], size=image_size, where=f"landmarks of {rel} in {index.where}")
        elif rel in missing:
            img = fit_square(img, image_size)
        elif img.shape[:2] != (image_size, image_size):
            if not resize:
                raise DataError(
                    f"{base / rel} is {img.shape[1]}x{img.shape[0]}, not an aligned {image_size}x{image_size} face: "
                    "give the landmarks file (--landmarks TSV) to align the photos, find the faces with "
                    "--detector g2d, align them first with `g2d-data align`, or pass --resize if they are aligned "
                    "crops of another size")
            img = fit_square(img, image_size)
        return rel, img

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        from tqdm import tqdm

        for rel, img in tqdm(pool.map(read, unique), total=len(unique), desc="reading images",
                             unit="img", disable=not progress, leave=False):
            cache[rel] = img
    if missing:
        import sys

        print(f"note: no face found in {len(missing)} of {len(unique)} photos (first: {sorted(missing)[0]}); "
              "they are used resized whole", file=sys.stderr)
    return np.stack([cache[p] for p in paths])


def _found_landmarks(base, rels, detector, progress):
    """{rel: [5, 2] or None}: the faces a data.finders finder finds in the photos (one process)."""
    from tqdm import tqdm

    from ..faces.finders import build_finder, finder_spec

    finder = build_finder(finder_spec(detector))
    out = {}
    for rel in tqdm(rels, desc="finding faces", unit="img", disable=not progress, leave=False):
        out[rel] = finder.find(read_image_file(base / rel, hint="listed in the pairs list; replace the file")).landmarks
    return out


def evaluate_pairs(embedder, root, pairs, landmarks=None, protocols=("clean",), seed=0, batch_size=64,
                   flip=True, nfolds=10, image_ext=None, progress=True, resize=False, detector=None):
    """Verification metrics of `embedder` on a pairs list: {protocol: verification_metrics dict}.

    pairs: a PairList or a pairs-file path; protocols: names from protocols.py (synthetic masks
    on the aligned faces). Folds come from the file when it has them.
    """
    from .engine import evaluate_protocols

    if isinstance(protocols, str):
        protocols = (protocols,)
    if not isinstance(pairs, PairList):
        pairs = read_pairs(pairs, image_ext=image_ext, nfolds=nfolds)
    images = load_pair_images(root, pairs, landmarks, image_ext=image_ext, progress=progress, resize=resize,
                              detector=detector)
    return evaluate_protocols(embedder, images, pairs.issame, protocols, seed=seed, batch_size=batch_size,
                              flip=flip, nfolds=nfolds, folds=pairs.folds, progress=progress)

"""Seeded verification pairs from a folder of photos of people with and without masks.

Photos live in `root/<identity>/*` (any nesting below the identity folder is kept in the path).
Which photos are masked is said one of three ways (`MaskedSpec`):
  - a folder: a second tree `masked_root/<identity>/*` whose photos are all masked (RMFD's
    AFDB_masked_face_dataset beside AFDB_face_dataset); identities are matched by folder name;
  - a glob on the path relative to the root (`*_mask*`, `*/masked/*`): matching photos are masked;
  - a list file: one relative path per line, each a masked photo.

Three protocols, each its own pairs file in the generic layout `g2d-eval pairs` reads
(`path1<TAB>path2<TAB>label<TAB>fold`, paths relative to the one image root printed in the header):
  clean-clean    both photos unmasked
  masked-clean   the first photo masked, the second unmasked
  masked-masked  both masked
Pairs are balanced (as many genuine as impostor in every fold), distinct (a pair and its mirror are
one pair in the symmetric protocols), and the folds are person-disjoint like LFW's: identities are
dealt to folds first, and every pair of a fold (impostors too) is drawn among that fold's people.
Genuine pairs are drawn round-robin over a fold's identities, so people with many photos do not
dominate. The same inputs and seed give the same files.
"""
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.image_io import IMAGE_EXTENSIONS
from ..errors import ConfigError, DataError
from ..fileio import file_digest

PROTOCOLS = ("clean-clean", "masked-clean", "masked-masked")
FIRST_MASKED = {"clean-clean": False, "masked-clean": True, "masked-masked": True}
SECOND_MASKED = {"clean-clean": False, "masked-clean": False, "masked-masked": True}


@dataclass
class Photo:
    path: str        # relative to the image root, '/' separated
    identity: str
    masked: bool


@dataclass
class PhotoSet:
    """The photos kept, the image root their paths are relative to, and what was left out and why."""

    root: Path
    photos: list
    dropped: dict = field(default_factory=dict)   # reason -> [relative paths]

    def summary(self):
        people = {p.identity for p in self.photos}
        masked = sum(p.masked for p in self.photos)
        both = {p.identity for p in self.photos if p.masked} & {p.identity for p in self.photos if not p.masked}
        return dict(photos=len(self.photos), masked=masked, clean=len(self.photos) - masked, identities=len(people),
                    identities_with_both=len(both),
                    dropped={reason: len(paths) for reason, paths in self.dropped.items()})


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _scan_tree(tree):
    """[(identity, path relative to tree)] of every image under tree/<identity>/ (sorted, links to
    folders not followed)."""
    tree = Path(tree)
    if not tree.is_dir():
        raise DataError(f"photo folder {str(tree)!r} is not a folder; give root/<identity>/* photos")
    found = []
    for ident in sorted(os.listdir(tree)):
        folder = tree / ident
        if ident.startswith(".") or not folder.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if _is_image(name):
                    rel = os.path.relpath(os.path.join(dirpath, name), tree).replace(os.sep, "/")
                    found.append((ident, rel))
    return found


def _read_list(path):
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the list of masked photos {path}: {err}") from None
    return {ln.strip().replace("\\", "/") for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}


def collect_photos(root, masked, exclude=(), drop_duplicates=True):
    """PhotoSet of the photos under `root`.

    masked: a folder (second tree of masked photos), a list file, or a glob on relative paths (see
    module doc). exclude: globs on relative paths to leave out (augmented copies, e.g. '*_flip*').
    drop_duplicates: leave out every photo whose bytes appear under two identities (a labelling
    error: the pair would be both genuine and impostor) and keep one of byte-identical copies within
    an identity (the copy would make a genuine pair of a photo with itself).
    """
    root = Path(root)
    if not masked:
        raise ConfigError("say which photos are masked: --masked FOLDER (a second root/<identity>/* tree), "
                          "--masked 'GLOB' on relative paths, or --masked LIST.txt")
    masked_text = os.fspath(masked)
    entries = []  # (identity, path relative to the common root, masked)
    if os.path.isdir(masked_text):
        masked_tree = Path(masked_text)
        common = Path(os.path.commonpath([root.resolve(), masked_tree.resolve()]))
        if common in (root.resolve(), masked_tree.resolve()):
            raise ConfigError(f"--masked folder {masked_text!r} and --root {str(root)!r} must be two separate "
                              "trees side by side (e.g. AFDB_face_dataset and AFDB_masked_face_dataset)")
        for tree, is_masked in ((root, False), (masked_tree, True)):
            prefix = os.path.relpath(tree.resolve(), common).replace(os.sep, "/")
            entries += [(ident, f"{prefix}/{rel}", is_masked) for ident, rel in _scan_tree(tree)]
        base = common
    else:
        if os.path.isfile(masked_text):
            listed = _read_list(masked_text)
            is_masked = listed.__contains__
        elif any(c in masked_text for c in "*?["):
            def is_masked(rel):
                return fnmatch.fnmatch(rel, masked_text)
        else:
            raise ConfigError(f"--masked {masked_text!r} is neither a folder, a list file nor a glob "
                              "(a glob needs * or ?, e.g. '*_mask*')")
        entries = [(ident, rel, is_masked(rel)) for ident, rel in _scan_tree(root)]
        base = root
    photos, dropped = [], {}
    for ident, rel, is_masked in entries:
        hit = next((g for g in exclude if fnmatch.fnmatch(rel, g)), None)
        if hit is not None:
            dropped.setdefault(f"excluded by {hit!r}", []).append(rel)
        else:
            photos.append(Photo(rel, ident, bool(is_masked)))
    if drop_duplicates:
        photos = _drop_duplicates(base, photos, dropped)
    if not photos:
        raise DataError(f"no photos left under {root} (image files in root/<identity>/ folders, after --exclude)")
    return PhotoSet(base, photos, dropped)


def _digest(path):
    return file_digest(path, "md5")


def _drop_duplicates(base, photos, dropped):
    by_digest = {}
    for p in photos:
        try:
            by_digest.setdefault(_digest(base / p.path), []).append(p)
        except OSError as err:
            dropped.setdefault("unreadable", []).append(p.path)
            print(f"note: cannot read {base / p.path}: {err}")
    keep = set()
    for group in by_digest.values():
        if len({p.identity for p in group}) > 1:
            dropped.setdefault("same file under two identities", []).extend(p.path for p in group)
            continue
        per_kind = {}
        for p in group:
            per_kind.setdefault(p.masked, []).append(p)
        for same in per_kind.values():
            keep.add(same[0].path)
            dropped.setdefault("byte-identical copy within an identity", []).extend(p.path for p in same[1:])
        if len(per_kind) > 1:  # one file listed as masked and as clean: which is it?
            dropped.setdefault("same file masked and unmasked", []).extend(p.path for p in group)
            keep.difference_update(p.path for p in group)
    for reason in [k for k, v in dropped.items() if not v]:
        del dropped[reason]
    return [p for p in photos if p.path in keep]


def deal_folds(identities, nfolds, rng):
    """{identity: fold}: identities shuffled and dealt round-robin into `nfolds` folds."""
    order = sorted(identities)
    rng.shuffle(order)
    return {ident: k % nfolds for k, ident in enumerate(order)}


def _genuine_candidates(first, second, symmetric, rng):
    """All genuine (a, b) of one identity, shuffled; symmetric: unordered, a != b."""
    if symmetric:
        cands = [(first[i], first[j]) for i in range(len(first)) for j in range(i + 1, len(first))]
    else:
        cands = [(a, b) for a in first for b in second if a != b]
    order = rng.permutation(len(cands))
    return [cands[i] for i in order]


def _draw_genuine(groups, want, rng):
    """Round-robin over identities (each a shuffled candidate list): up to `want` pairs."""
    queues = [list(g) for g in groups if g]
    rng.shuffle(queues)
    out = []
    while queues and len(out) < want:
        for q in queues:
            if len(out) == want:
                break
            out.append(q.pop())
        queues = [q for q in queues if q]
    return out


def _draw_impostors(first_by_id, second_by_id, want, symmetric, rng, max_tries=50):
    """Up to `want` distinct impostor pairs among the fold's identities."""
    ids_a = [i for i in first_by_id if first_by_id[i]]
    ids_b = [i for i in second_by_id if second_by_id[i]]
    seen, out = set(), []
    tries = 0
    while len(out) < want and tries < max_tries * max(want, 1):
        tries += 1
        ia, ib = ids_a[rng.integers(len(ids_a))], ids_b[rng.integers(len(ids_b))]
        if ia == ib:
            continue
        a = first_by_id[ia][rng.integers(len(first_by_id[ia]))]
        b = second_by_id[ib][rng.integers(len(second_by_id[ib]))]
        key = tuple(sorted((a, b))) if symmetric else (a, b)
        if key in seen:
            continue
        seen.add(key)
        out.append((a, b))
    return out


def draw_protocol_pairs(photos, protocol, num_pairs, nfolds=10, seed=0):
    """[(path1, path2, same, fold)] for one protocol: up to num_pairs pairs, half genuine, balanced per fold.

    Fewer are returned when the photos hold fewer distinct genuine pairs; never more than asked.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; protocols: {', '.join(PROTOCOLS)}")
    if num_pairs < 2 * nfolds:
        raise ConfigError(f"--pairs {num_pairs}: at least {2 * nfolds} pairs are needed for {nfolds} folds "
                          "(one genuine and one impostor in each)")
    rng = np.random.default_rng([int(seed), PROTOCOLS.index(protocol)])
    first_masked, second_masked = FIRST_MASKED[protocol], SECOND_MASKED[protocol]
    symmetric = first_masked == second_masked
    first_by_id, second_by_id = {}, {}
    for p in photos:
        if p.masked == first_masked:
            first_by_id.setdefault(p.identity, []).append(p.path)
        if p.masked == second_masked:
            second_by_id.setdefault(p.identity, []).append(p.path)
    people = sorted(set(first_by_id) | set(second_by_id))
    # dealt over everyone in the photos, so a person is in the same fold in every protocol
    folds = deal_folds({p.identity for p in photos}, nfolds, np.random.default_rng(int(seed)))
    per_fold = num_pairs // (2 * nfolds)
    rows = []
    for fold in range(nfolds):
        members = [i for i in people if folds[i] == fold]
        firsts = {i: first_by_id.get(i, []) for i in members}
        seconds = {i: second_by_id.get(i, []) for i in members}
        groups = [_genuine_candidates(firsts[i], seconds[i], symmetric, rng) for i in members]
        genuine = _draw_genuine(groups, per_fold, rng)
        impostor = _draw_impostors(firsts, seconds, len(genuine), symmetric, rng)
        count = min(len(genuine), len(impostor))
        rows += [(a, b, True, fold) for a, b in genuine[:count]]
        rows += [(a, b, False, fold) for a, b in impostor[:count]]
    if not any(r[2] for r in rows):
        raise DataError(f"{protocol}: no genuine pair can be drawn (no identity has "
                        f"{'two masked photos' if protocol == 'masked-masked' else 'the photos needed'})")
    return rows


def pairs_text(rows, protocol, root, seed, summary):
    """The pairs file: a comment header (what, root, seed, counts), then path1 TAB path2 TAB label TAB fold."""
    n_gen = sum(r[2] for r in rows)
    lines = [f"# {protocol} pairs drawn by g2d-eval make-pairs, seed {seed}: {n_gen} genuine + "
             f"{len(rows) - n_gen} impostor, folds person-disjoint",
             f"# image root: {root}",
             f"# photos: {summary['photos']} ({summary['masked']} masked) of {summary['identities']} identities"]
    lines += [f"{a}\t{b}\t{int(same)}\t{fold}" for a, b, same, fold in rows]
    return "\n".join(lines) + "\n"

"""IJB-B / IJB-C 1:1 template verification, the way arcface_torch's eval_ijbc.py scores it.

Layout (as distributed with insightface's IJB release), for dataset "IJBC" (or "IJBB" -> ijbb_*):

    ROOT/meta/ijbc_face_tid_mid.txt         image_name template_id media_id        (one line per image)
    ROOT/meta/ijbc_name_5pts_score.txt      image_name x1 y1 ... x5 y5 faceness    (same images, same order)
    ROOT/meta/ijbc_template_pair_label.txt  template_id_1 template_id_2 label(0/1)
    ROOT/loose_crop/<image_name>

Method (arcface_torch's "F2 N1 D1" mode):
  1. align each loose crop to 112x112 with its five points, embed it and its mirror image and add the
     two embeddings (no normalisation: the feature norm is kept as a quality weight);
  2. optionally multiply each image feature by the detector's faceness score;
  3. a template feature = sum over its media of (mean of the media's image features), L2-normalised;
  4. the score of a template pair is the cosine of the two template features;
  5. TAR at FAR 1e-6 .. 1e-1 from the ROC of all pairs, read off as everywhere in this project
     (verification.tar_at_far: exact at the operating points, linear between them, NaN when the
     set has fewer than 1/FAR impostor pairs). eval_ijbc.py takes the ROC point nearest to the FAR
     instead; on IJB-B/C's millions of impostor pairs the two differ by at most one impostor pair.

Masked probes. IJB 1:1 has no probe/gallery sides, so this module defines them: with
mask_select="t2" the probe templates are every template that appears as the second template of a
pair (in IJB-B/C these are the verification templates, largely disjoint from the first ones); with
"half" a seeded random half of all templates. Every image of a probe template is masked after
alignment with MaskSynthesizer, with a random generator seeded by (seed, image index), so the
masked set does not depend on batching or worker count. The results count how many pairs end up
masked-masked, masked-clean and clean-clean.
"""
import os
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .report import downsample_roc, far_key
from .verification import roc_curve, tar_at_far

DATASETS = ("IJBC", "IJBB")
IJB_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
MASK_SELECT = ("t2", "half")


@dataclass
class IJBMeta:
    """What the three meta files say. N images, P pairs."""

    root: str
    dataset: str
    image_names: list          # N file names under loose_crop/
    templates: np.ndarray      # N int64 template id of each image
    medias: np.ndarray         # N int64 media id of each image
    landmarks: np.ndarray      # N x 5 x 2 float32, pixel coordinates in the loose crop
    faceness: np.ndarray       # N float32 detector score
    pair_t1: np.ndarray        # P int64
    pair_t2: np.ndarray        # P int64
    pair_label: np.ndarray     # P bool, True = same person

    def image_path(self, i):
        return os.path.join(self.root, "loose_crop", self.image_names[i])


def meta_paths(root, dataset):
    prefix = os.path.join(root, "meta", dataset.lower())
    return dict(
        tid_mid=f"{prefix}_face_tid_mid.txt",
        pairs=f"{prefix}_template_pair_label.txt",
        points=f"{prefix}_name_5pts_score.txt",
    )


def _check_dataset(dataset):
    name = str(dataset).upper()
    if name not in DATASETS:
        raise DataError(f"unknown IJB dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    return name


def _read_lines(path):
    if not os.path.isfile(path):
        raise DataError(f"IJB meta file {path!r} does not exist (expected the insightface IJB layout: "
                        "ROOT/meta/*_face_tid_mid.txt, *_name_5pts_score.txt, *_template_pair_label.txt)")
    with open(path, "r", encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def _read_int_table(path, columns):
    """Whitespace-separated integers, `columns` per line -> int64 array [rows, columns]."""
    if not os.path.isfile(path):
        raise DataError(f"IJB meta file {path!r} does not exist")
    if os.path.getsize(path) == 0:
        raise DataError(f"IJB meta file {path!r} is empty")
    try:
        values = np.loadtxt(path, dtype=np.int64, ndmin=2)  # numpy >= 1.23: C parser, fast on 15M lines
    except ValueError as err:
        raise DataError(f"{path!r}: expected {columns} integers per line ({str(err).splitlines()[0]})") from None
    if values.shape[1] != columns:
        raise DataError(f"{path!r}: expected {columns} integers per line, got {values.shape[1]}")
    return values


def read_ijb_meta(root, dataset="IJBC"):
    """Read and cross-check the meta files of an IJB-B/C folder -> IJBMeta."""
    dataset = _check_dataset(dataset)
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"IJB root {root!r} is not a folder (it should hold meta/ and loose_crop/)")
    paths = meta_paths(root, dataset)

    names, templates, medias = [], [], []
    for n, line in enumerate(_read_lines(paths["tid_mid"]), 1):
        parts = line.split()
        if len(parts) != 3:
            raise DataError(f"{paths['tid_mid']} line {n}: expected 'image_name template_id media_id'")
        try:
            templates.append(int(parts[1]))
            medias.append(int(parts[2]))
        except ValueError:
            raise DataError(f"{paths['tid_mid']} line {n}: template and media ids must be integers") from None
        names.append(parts[0])

    point_lines = _read_lines(paths["points"])
    if len(point_lines) != len(names):
        raise DataError(f"{paths['points']} has {len(point_lines)} lines but {paths['tid_mid']} has "
                        f"{len(names)}: the two files must list the same images in the same order")
    landmarks = np.empty((len(names), 10), np.float32)
    faceness = np.empty(len(names), np.float32)
    for n, line in enumerate(point_lines):
        parts = line.split()
        if len(parts) != 12:
            raise DataError(f"{paths['points']} line {n + 1}: expected 'image_name x1 y1 ... x5 y5 score' "
                            f"(12 fields), got {len(parts)}")
        if parts[0] != names[n]:
            raise DataError(f"{paths['points']} line {n + 1} names {parts[0]!r} but {paths['tid_mid']} "
                            f"line {n + 1} names {names[n]!r}: the files must be in the same order")
        try:
            landmarks[n] = [float(v) for v in parts[1:11]]
            faceness[n] = float(parts[11])
        except ValueError:
            raise DataError(f"{paths['points']} line {n + 1}: landmarks and score must be numbers") from None

    pairs = _read_int_table(paths["pairs"], 3)
    meta = IJBMeta(
        root=root, dataset=dataset, image_names=names,
        templates=np.asarray(templates, np.int64), medias=np.asarray(medias, np.int64),
        landmarks=landmarks.reshape(-1, 5, 2), faceness=faceness,
        pair_t1=pairs[:, 0].copy(), pair_t2=pairs[:, 1].copy(), pair_label=pairs[:, 2] != 0,
    )
    bad_labels = ~np.isin(pairs[:, 2], (0, 1))
    if bad_labels.any():
        raise DataError(f"{paths['pairs']} line {int(np.argmax(bad_labels)) + 1}: label must be 0 or 1")
    known = np.unique(meta.templates)
    for side, ids in (("first", meta.pair_t1), ("second", meta.pair_t2)):
        missing = ~np.isin(ids, known)
        if missing.any():
            raise DataError(f"{paths['pairs']} line {int(np.argmax(missing)) + 1}: {side} template "
                            f"{int(ids[missing][0])} has no image in {paths['tid_mid']}")
    return meta


def probe_templates(meta, select="t2", seed=0):
    """Sorted int64 array of the template ids whose images are masked (see the module docstring)."""
    if select == "t2":
        return np.unique(meta.pair_t2)
    if select == "half":
        ids = np.unique(meta.templates)
        rng = np.random.default_rng([0x1B, int(seed)])
        return np.sort(rng.permutation(ids)[: len(ids) // 2])
    raise DataError(f"unknown mask selection {select!r}; use one of {', '.join(MASK_SELECT)}")


class IJBFaces:
    """Map-style dataset of aligned IJB faces: item i -> uint8 112 x 112 x 3 RGB (masked when
    mask[i]). Picklable, so a DataLoader can decode and align in worker processes."""

    def __init__(self, meta, mask=None, seed=0, mask_styles=None):
        self.meta = meta
        self.mask = np.zeros(len(meta.image_names), bool) if mask is None else np.asarray(mask, bool)
        self.seed = int(seed)
        self.mask_styles = mask_styles
        self._synth = None

    def __len__(self):
        return len(self.meta.image_names)

    def __getitem__(self, i):
        from ..data.align import align_face
        from ..data.image_io import read_image_file

        path = self.meta.image_path(i)
        rgb = read_image_file(path, what="IJB image",
                              hint="it is listed in the meta files; check that loose_crop/ is complete")
        face = align_face(rgb, self.meta.landmarks[i], size=112, where=f"landmarks of IJB image {path}")
        if self.mask[i]:
            face = self._mask(face, i)
        return np.ascontiguousarray(face, dtype=np.uint8)

    def _mask(self, face, i):
        if self._synth is None:
            from ..masks.synthesizer import MaskSynthesizer

            self._synth = MaskSynthesizer(styles=self.mask_styles)
        masked, _ = self._synth.apply(face, np.random.default_rng([self.seed, int(i)]))
        return masked


def extract_image_features(faces, embedder, batch_size=128, num_workers=0, progress=True):
    """faces: IJBFaces (or any sequence of uint8 112x112x3 RGB) -> N x D float32 features
    (embedding of the face + embedding of its mirror image, not normalised)."""
    import torch
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(faces, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, collate_fn=np.stack)
    feats = []
    with tqdm(total=len(faces), desc="IJB images", unit="img", disable=not progress) as bar:
        try:
            for batch in loader:
                feats.append(np.asarray(embedder.embed_images(batch, batch_size=batch_size, flip=True, progress=False),
                                        np.float32))
                bar.update(len(batch))
        except DataError as err:
            # from a worker process the message carries the worker's traceback: keep its last line
            last = str(err).strip().splitlines()[-1]
            raise DataError(last.split("DataError: ", 1)[-1]) from None
    return np.concatenate(feats, 0)


def check_images_exist(meta):
    """Raise DataError naming the first missing loose crop (and how many are missing) before any work."""
    missing = [i for i in range(len(meta.image_names)) if not os.path.isfile(meta.image_path(i))]
    if missing:
        raise DataError(f"{len(missing)} of {len(meta.image_names)} IJB images are missing (first: "
                        f"{meta.image_path(missing[0])!r}); check that loose_crop/ is complete")


def _membership(keys, weights=None):
    """Sparse [K, N] matrix with row k holding `weights` (default 1) at the items whose key is the
    k-th smallest distinct key; returns (distinct keys, matrix). M @ values sums rows by key."""
    from scipy import sparse

    uniq, row = np.unique(keys, return_inverse=True)
    data = np.ones(len(keys)) if weights is None else np.asarray(weights, np.float64)
    return uniq, sparse.csr_matrix((data, (row.ravel(), np.arange(len(keys)))), shape=(len(uniq), len(keys)))


def template_features(img_feats, templates, medias, faceness=None):
    """Image features -> L2-normalised template features.

    img_feats: N x D; templates, medias: N ids; faceness: N scores or None.
    A template's feature is the sum over its media of the mean feature of the media's images
    (a video's frames count once, a still image once). Returns (template_ids T sorted, T x D float64).
    Done as two sparse products (media means, then template sums): seconds on IJB-C's 470k images.
    """
    feats = np.asarray(img_feats)
    templates = np.asarray(templates, np.int64)
    medias = np.asarray(medias, np.int64)
    # one group per (template, media): media ids are not guaranteed unique across templates
    span = int(medias.max() - medias.min()) + 1 if len(medias) else 1
    _, first, group_of = np.unique(templates * span + (medias - medias.min()), return_index=True,
                                   return_inverse=True)
    group_of = group_of.ravel()
    weights = 1.0 / np.bincount(group_of)[group_of]
    if faceness is not None:
        weights = weights * np.asarray(faceness, np.float64)
    _, to_media = _membership(group_of, weights)
    template_ids, to_template = _membership(templates[first])
    tfeats = np.asarray(to_template @ (to_media @ feats), np.float64)
    norms = np.linalg.norm(tfeats, axis=1, keepdims=True)
    return template_ids, tfeats / np.maximum(norms, 1e-12)


def pair_scores(template_ids, template_feats, t1, t2, chunk=1 << 16):
    """Cosine of template pairs: P scores (template_feats rows are L2-normalised)."""
    idx1 = np.searchsorted(template_ids, t1)
    idx2 = np.searchsorted(template_ids, t2)
    scores = np.empty(len(t1))
    for s in range(0, len(t1), chunk):  # bounded memory on IJB-C's 15.7M pairs
        a = template_feats[idx1[s:s + chunk]]
        b = template_feats[idx2[s:s + chunk]]
        scores[s:s + chunk] = np.einsum("ij,ij->i", a, b)
    return scores


def score_pairs(meta, img_feats, faceness=True):
    """Image features -> (scores P, template ids, template features)."""
    tids, tfeats = template_features(img_feats, meta.templates, meta.medias,
                                     meta.faceness if faceness else None)
    return pair_scores(tids, tfeats, meta.pair_t1, meta.pair_t2), tids, tfeats


def summarize_scores(labels, scores, fars=IJB_FARS, roc_points=400):
    """ROC summary: dict(tar_at_far {"1e-04": tar or NaN, ...}, auc, roc=(fpr, tpr) thinned to
    ~roc_points points)."""
    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"IJB pairs need both genuine and impostor pairs (got {n_pos} genuine, "
                        f"{n_neg} impostor); check the labels in the pair file")
    fpr, tpr = roc_curve(scores, labels)
    return dict(
        tar_at_far={far_key(far): tar_at_far(fpr, tpr, far, n_neg) for far in fars},
        auc=float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0)),
        roc=downsample_roc(fpr, tpr, roc_points),
    )


def evaluate_ijb(model, root, dataset="IJBC", *, faceness=True, mask_probe=False, mask_select="t2",
                 mask_styles=None, seed=0, batch_size=128, device="cpu", num_workers=0, progress=True,
                 fars=IJB_FARS, meta=None):
    """Run IJB-B/C 1:1 verification for one model.

    model: an Embedder (callable on N x 3 x 112 x 112 [-1, 1] tensors), an nn.Module, a
    "network:checkpoint" spec or a .onnx path. Returns a dict with the counts, the TAR at each FAR
    (keys "1e-06" ...), the AUC, the thinned ROC and the raw pair `scores` (P float64).
    """
    if mask_select not in MASK_SELECT:
        raise DataError(f"unknown mask selection {mask_select!r}; use one of {', '.join(MASK_SELECT)}")
    if mask_probe:
        from ..masks.synthesizer import MaskSynthesizer

        MaskSynthesizer(styles=mask_styles)  # an unknown style fails here, not inside a worker
    if meta is None:
        meta = read_ijb_meta(root, dataset)
    check_images_exist(meta)
    from ..embedders.factory import build_embedder

    embedder = build_embedder(model, device=device)
    n_images = len(meta.image_names)
    masked_t = probe_templates(meta, mask_select, seed) if mask_probe else np.zeros(0, np.int64)
    mask = np.isin(meta.templates, masked_t)
    faces = IJBFaces(meta, mask=mask, seed=seed, mask_styles=mask_styles)
    img_feats = extract_image_features(faces, embedder, batch_size, num_workers, progress)
    scores, tids, _ = score_pairs(meta, img_feats, faceness)
    m1 = np.isin(meta.pair_t1, masked_t)
    m2 = np.isin(meta.pair_t2, masked_t)
    summary = summarize_scores(meta.pair_label, scores, fars)
    return dict(
        dataset=meta.dataset,
        root=meta.root,
        images=n_images,
        templates=int(len(tids)),
        pairs=int(len(scores)),
        genuine_pairs=int(meta.pair_label.sum()),
        impostor_pairs=int((~meta.pair_label).sum()),
        faceness=bool(faceness),
        flip=True,
        mask_probe=bool(mask_probe),
        mask_select=mask_select if mask_probe else None,
        seed=int(seed),
        masked_templates=int(len(masked_t)),
        masked_images=int(mask.sum()),
        pair_masking={"masked-masked": int((m1 & m2).sum()), "masked-clean": int((m1 ^ m2).sum()),
                      "clean-clean": int((~m1 & ~m2).sum())},
        scores=scores,
        **summary,
    )


def ijb_markdown(results):
    """Markdown table of TAR at each FAR for a list of (label, evaluate_ijb result) rows."""
    from .report import fmt_percent, markdown_table

    fars = list(results[0][1]["tar_at_far"]) if results else []
    header = ["model", "dataset", "probe"] + [f"TAR@FAR={k}" for k in fars] + ["AUC"]
    rows = []
    for label, r in results:
        probe = f"masked ({r['mask_select']})" if r["mask_probe"] else "clean"
        rows.append([label, r["dataset"], probe] + [fmt_percent(r["tar_at_far"][k]) for k in fars]
                    + [fmt_percent(r["auc"])])
    return markdown_table(header, rows, ["l", "l", "l"] + ["r"] * (len(fars) + 1))

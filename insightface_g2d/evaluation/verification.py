"""1:1 verification metrics, with arcface_torch's accuracy protocol.

Accuracy (what arcface_torch's eval/verification.py reports as "Accuracy-Flip"):
  embeddings are L2-normalised (zero vectors left as they are), the score of pair i is the
  squared Euclidean distance of rows 2i and 2i+1 (0..4), a pair is "same" when distance <
  threshold; pairs are split into `nfolds` contiguous folds (sklearn's KFold without shuffling:
  the first n % k folds get one extra pair), unless a contiguous fold would hold one class only
  (a list sorted genuine-first): then the folds are balanced (`balanced_fold_ids`: the same
  sizes, each class in its share, order kept within each class), and the metrics say so
  (`folds` = "balanced"); for each fold the threshold in
  np.arange(0, 4, 0.01) with the most correct train-fold pairs (first one on ties) is applied
  to the held-out fold; accuracy = mean +- std (population std) of the held-out accuracies.
  Here it is computed with one histogram of threshold indices per fold instead of a loop over
  400 thresholds, so it costs O(pairs) after a sort.

ROC, AUC and TAR@FAR use all pairs at once, scored by cosine similarity. The ROC has one point
per distinct score (plus (0, 0)); AUC is its trapezoid area. TAR@FAR=f is read off that ROC by
linear interpolation between its operating points: fpr values are multiples of 1/n_negative,
so when f * n_negative is a whole number k, TAR@FAR is the true accept rate of the strictest
threshold that lets exactly k negative pairs through; otherwise it is interpolated between the
neighbouring operating points (the rate of a randomised mix of the two thresholds). When
n_negative * f < 1 the set is too small to measure that FAR and the value is NaN.
"""
import math

import numpy as np

from ..errors import DataError
from .report import far_key

FAR_TARGETS = (1e-2, 1e-3, 1e-4)
ACC_THRESHOLDS = np.arange(0, 4, 0.01)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # renamed in numpy 2


def l2_normalize(x):
    """Rows divided by their L2 norm; zero rows stay zero (as sklearn.preprocessing.normalize)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def kfold_ids(n, k):
    """Fold index of each of n items for k contiguous folds, sizes as sklearn KFold(k, shuffle=False)."""
    if k < 2 or n < k:
        raise DataError(f"cannot split {n} pairs into {k} folds (need at least {max(k, 2)} pairs and k >= 2)")
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    return np.repeat(np.arange(k), sizes)


def balanced_fold_ids(issame, k):
    """Fold of each pair for k folds of sklearn KFold's sizes in which each class has its share.

    Fold f of size s_f gets g_f genuine pairs, g_f = round(G * S_f / N) - round(G * S_(f-1) / N)
    (S_f: the sizes of folds 0..f summed, G of N pairs genuine), so g_f is within 1 of G * s_f / N,
    and the rest impostors; each class goes to the folds in its own order (genuine 0..g_0-1 to
    fold 0, ...). Written fold by fold, such a set's k contiguous folds are these folds.
    """
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    n, g = len(issame), int(issame.sum())
    sizes = np.bincount(kfold_ids(n, k), minlength=k)
    genuine_upto = np.floor(g * np.cumsum(sizes) / n + 0.5).astype(np.int64)
    genuine = np.diff(np.r_[0, genuine_upto])
    ids = np.empty(n, dtype=np.int64)
    ids[issame] = np.repeat(np.arange(k), genuine)
    ids[~issame] = np.repeat(np.arange(k), sizes - genuine)
    return ids


def one_class_folds(issame, fold_ids):
    """Number of folds without a genuine or without an impostor pair (0 when the set has one class)."""
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    if issame.all() or not issame.any():
        return 0
    _, fold = np.unique(fold_ids, return_inverse=True)
    pos = np.bincount(fold[issame], minlength=fold.max() + 1)
    neg = np.bincount(fold[~issame], minlength=fold.max() + 1)
    return int(((pos == 0) | (neg == 0)).sum())


def default_fold_ids(issame, k):
    """(fold ids, "contiguous" | "balanced"): arcface_torch's k contiguous folds, or balanced folds
    (`balanced_fold_ids`) when a contiguous fold would hold one class only: there the threshold
    would be chosen on the other class alone."""
    ids = kfold_ids(len(np.asarray(issame).reshape(-1)), k)
    if one_class_folds(issame, ids):
        return balanced_fold_ids(issame, k), "balanced"
    return ids, "contiguous"


def fold_note(num_pairs, k, name=None):
    """The one line that says `default_fold_ids` balanced the folds of a set."""
    what = f"{name}: " if name else ""
    return (f"note: {what}{k} contiguous folds of these {num_pairs} pairs would hold one class only (the pairs are "
            f"sorted by class, e.g. all genuine first); using {k} balanced folds instead (each fold the same share "
            "of genuine and impostor pairs, order kept within each class)")


def pair_distances(embeddings):
    """[2N, D] embeddings -> (squared distances [N], cosine similarities [N]) of normalised pairs."""
    emb = l2_normalize(embeddings)
    a, b = emb[0::2], emb[1::2]
    return np.sum((a - b) ** 2, axis=1), np.sum(a * b, axis=1)


def fold_accuracy(dist, issame, fold_ids, thresholds=ACC_THRESHOLDS):
    """Held-out accuracy per fold and the threshold chosen on the other folds.

    dist [N] squared distances, issame bool [N], fold_ids int [N] (any labels; each distinct
    label is one fold, in sorted order). Returns (accuracies [K], thresholds [K]).
    """
    labels, fold = np.unique(fold_ids, return_inverse=True)
    k, nt = len(labels), len(thresholds)
    if k < 2:
        raise DataError("accuracy needs at least 2 folds (thresholds are chosen on the other folds)")
    # t_index[i]: first threshold index t with dist[i] < thresholds[t]; pair i is "same" for t >= t_index[i].
    t_index = np.searchsorted(thresholds, dist, side="right")

    def below(mask):  # [K, nt]: pairs with dist < threshold, per fold
        counts = np.bincount(fold[mask] * (nt + 1) + t_index[mask], minlength=k * (nt + 1))
        return np.cumsum(counts.reshape(k, nt + 1), axis=1)[:, :nt]

    tp = below(issame)
    fp = below(~issame)
    n_diff = np.bincount(fold[~issame], minlength=k)[:, None]
    n_fold = np.bincount(fold, minlength=k)
    correct = tp + (n_diff - fp)  # [K, nt] correct decisions in each fold at each threshold
    train_correct = correct.sum(axis=0, keepdims=True) - correct
    best = np.argmax(train_correct, axis=1)  # first maximum, as np.argmax over float accuracies
    acc = correct[np.arange(k), best] / n_fold
    return acc, thresholds[best]


def roc_curve(scores, issame):
    """ROC over similarity scores (higher = more alike): (fpr, tpr), starting at (0, 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], issame[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.full(len(last) + 1, np.nan)
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.full(len(last) + 1, np.nan)
    return fpr, tpr


def tar_at_far(fpr, tpr, far, n_negative):
    """True accept rate at false accept rate `far` (see module doc); NaN when not measurable."""
    if n_negative * far < 1 or np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    x, inverse = np.unique(fpr, return_inverse=True)
    y = np.full(len(x), -np.inf)
    np.maximum.at(y, inverse, tpr)  # upper end of each vertical ROC segment
    return float(np.interp(far, x, y))


def verification_metrics(embeddings, issame, nfolds=10, folds=None, far_targets=FAR_TARGETS):
    """Metrics of a verification set.

    embeddings [2N, D] (pair i = rows 2i, 2i+1; normalised here), issame bool [N].
    folds: optional int [N] fold label per pair (e.g. LFW pairs.txt's folds); default: nfolds
    contiguous folds as arcface_torch, balanced ones when a contiguous fold would hold one class
    only (`default_fold_ids`).
    Returns dict(accuracy, accuracy_std, best_threshold (mean of the per-fold squared-distance
    thresholds, 0..4), fold_accuracies, fold_thresholds, tar_at_far {far: tar}, roc=(fpr, tpr), auc,
    num_pairs, num_positive, num_negative, folds: "given" | "contiguous" | "balanced",
    scores: the cosine similarity of each pair [N], issame [N]).
    """
    emb = np.asarray(embeddings)
    issame = np.asarray(issame).astype(bool).reshape(-1)
    if emb.ndim != 2 or len(emb) != 2 * len(issame):
        raise DataError(f"need 2 embeddings per pair: got embeddings {emb.shape} for {len(issame)} pairs")
    if not np.isfinite(emb).all():
        raise DataError("embeddings contain NaN or inf; the network diverged or the checkpoint is broken")
    dist, sim = pair_distances(emb)
    if folds is None:
        fold_ids, how = default_fold_ids(issame, nfolds)
    else:
        fold_ids, how = np.asarray(folds).reshape(-1), "given"
    if len(fold_ids) != len(issame):
        raise DataError(f"{len(fold_ids)} fold labels for {len(issame)} pairs")
    acc, thr = fold_accuracy(dist, issame, fold_ids)
    fpr, tpr = roc_curve(sim, issame)
    n_neg = int((~issame).sum())
    auc = float(_trapezoid(tpr, fpr)) if n_neg and n_neg < len(issame) else float("nan")
    return dict(
        accuracy=float(np.mean(acc)),
        accuracy_std=float(np.std(acc)),
        best_threshold=float(np.mean(thr)),
        fold_accuracies=acc,
        fold_thresholds=thr,
        tar_at_far={far: tar_at_far(fpr, tpr, far, n_neg) for far in far_targets},
        roc=(fpr, tpr),
        auc=auc,
        num_pairs=len(issame),
        num_positive=int(issame.sum()),
        num_negative=n_neg,
        folds=how,
        scores=sim,
        issame=issame,
    )


def _plain(x):
    if isinstance(x, float) and math.isnan(x):
        return None  # JSON has no NaN
    return x


def metrics_to_json(metrics, include_roc=False):
    """JSON-ready dict of `verification_metrics` output (NaN -> null; ROC only on request)."""
    out = {
        "accuracy": metrics["accuracy"],
        "accuracy_std": metrics["accuracy_std"],
        "best_threshold": metrics["best_threshold"],
        "fold_accuracies": [float(a) for a in metrics["fold_accuracies"]],
        "tar_at_far": {far_key(k): _plain(float(v)) for k, v in metrics["tar_at_far"].items()},
        "auc": _plain(metrics["auc"]),
        "num_pairs": metrics["num_pairs"],
        "num_positive": metrics["num_positive"],
        "num_negative": metrics["num_negative"],
        "folds": metrics.get("folds", "given"),
    }
    if include_roc:
        fpr, tpr = metrics["roc"]
        out["roc"] = {"fpr": [_plain(float(v)) for v in fpr], "tpr": [_plain(float(v)) for v in tpr]}
    return out


def format_metrics(metrics):
    """One line: accuracy +- std, TAR@FAR values, AUC, and the accuracy threshold with its units."""
    tars = ", ".join(
        f"TAR@FAR={far:.0e} " + ("n/a" if math.isnan(v) else f"{100 * v:.2f}%")
        for far, v in metrics["tar_at_far"].items()
    )
    auc = "n/a" if math.isnan(metrics["auc"]) else f"{metrics['auc']:.4f}"
    return (f"accuracy {100 * metrics['accuracy']:.2f}% +- {100 * metrics['accuracy_std']:.2f}, "
            f"{tars}, AUC {auc} ({metrics['num_pairs']} pairs); accuracy threshold "
            f"{metrics['best_threshold']:.2f} squared distance of normalised embeddings (= cosine "
            f"{1 - metrics['best_threshold'] / 2:.3f})")

"""verification_metrics against a straightforward loop implementation of arcface_torch's protocol."""
import math

import numpy as np
import pytest

from insightface_g2d.errors import DataError
from insightface_g2d.evaluation.verification import (
    fold_accuracy,
    kfold_ids,
    metrics_to_json,
    roc_curve,
    tar_at_far,
    verification_metrics,
)


# ------------------------------------------------------------------ independent reference


def ref_folds(n, k):
    """Contiguous folds, the first n % k one pair larger (sklearn KFold without shuffle)."""
    folds, start = [], 0
    for f in range(k):
        size = n // k + (1 if f < n % k else 0)
        folds.append(list(range(start, start + size)))
        start += size
    return folds


def ref_accuracy_from_dist(dist, issame, folds):
    """Loop over folds and thresholds exactly as the documented algorithm reads."""
    thresholds = np.arange(0, 4, 0.01)
    d, s = np.asarray(dist), np.asarray(issame)
    accs, chosen = [], []
    everything = set(range(len(dist)))
    for test in folds:
        train = sorted(everything - set(test))
        best_acc, best_t = -1.0, None
        for t in thresholds:
            correct = int(np.sum((d[train] < t) == s[train]))
            acc = correct / len(train)
            if acc > best_acc:  # strict: the first best threshold wins
                best_acc, best_t = acc, t
        correct = sum(int((dist[i] < best_t) == issame[i]) for i in test)
        accs.append(correct / len(test))
        chosen.append(best_t)
    return float(np.mean(accs)), float(np.std(accs)), np.array(chosen)


def ref_accuracy(embeddings, issame, k=10):
    emb = np.asarray(embeddings, dtype=np.float64)
    out = np.zeros_like(emb)
    for r in range(len(emb)):
        norm = math.sqrt(float((emb[r] ** 2).sum()))
        out[r] = emb[r] / norm if norm > 0 else emb[r]
    dist = [float(((out[2 * i] - out[2 * i + 1]) ** 2).sum()) for i in range(len(issame))]
    return ref_accuracy_from_dist(dist, list(map(bool, issame)), ref_folds(len(issame), k))


def structured(rng, n_pairs, dim, noise):
    """Pairs where matched ones are noisy copies: accuracy well above chance."""
    issame = rng.random(n_pairs) < 0.5
    emb = rng.normal(size=(2 * n_pairs, dim))
    emb[1::2][issame] = emb[0::2][issame] + noise * rng.normal(size=(issame.sum(), dim))
    return emb.astype(np.float32), issame


# ------------------------------------------------------------------ tests


def test_kfold_sizes_match_sklearn_rule():
    ids = kfold_ids(23, 10)
    assert np.bincount(ids).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert np.all(np.diff(ids) >= 0)  # contiguous, in order
    with pytest.raises(DataError):
        kfold_ids(5, 10)


@pytest.mark.parametrize("seed,n_pairs,dim,noise", [(0, 200, 16, None), (1, 137, 32, 1.0), (2, 300, 8, 0.6),
                                                    (3, 61, 64, 1.4)])
def test_accuracy_matches_loop_reference(seed, n_pairs, dim, noise):
    rng = np.random.default_rng(seed)
    if noise is None:  # pure random embeddings: accuracy near chance
        emb = rng.normal(size=(2 * n_pairs, dim)).astype(np.float32)
        issame = rng.random(n_pairs) < 0.5
    else:
        emb, issame = structured(rng, n_pairs, dim, noise)
    m = verification_metrics(emb, issame)
    acc, std, thr = ref_accuracy(emb, issame)
    assert m["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert m["accuracy_std"] == pytest.approx(std, abs=1e-12)
    np.testing.assert_allclose(m["fold_thresholds"], thr)
    assert m["best_threshold"] == pytest.approx(thr.mean())
    if noise is not None and noise < 1.2:
        assert m["accuracy"] > 0.8


def test_ties_on_threshold_grid_and_zero_vectors():
    # Distances exactly on grid values exercise "dist < threshold" (strict) and first-max ties.
    rng = np.random.default_rng(5)
    grid = np.arange(0, 4, 0.01)
    dist = grid[rng.integers(0, 400, size=157)]
    issame = dist < 1.3
    issame[rng.random(157) < 0.2] ^= True  # label noise so several thresholds tie
    acc, thr = fold_accuracy(dist, issame, kfold_ids(157, 10))
    racc, rstd, rthr = ref_accuracy_from_dist(list(dist), list(issame), ref_folds(157, 10))
    assert acc.mean() == pytest.approx(racc, abs=1e-12)
    assert acc.std() == pytest.approx(rstd, abs=1e-12)
    np.testing.assert_array_equal(thr, rthr)
    # A zero embedding stays zero (distance to a unit vector = 1), as sklearn's normalize.
    emb = rng.normal(size=(40, 4))
    emb[0] = 0
    same = rng.random(20) < 0.5
    m = verification_metrics(emb, same, nfolds=4)
    assert m["accuracy"] == pytest.approx(ref_accuracy(emb, same, 4)[0], abs=1e-12)


def test_explicit_folds_match_reference_with_those_folds():
    rng = np.random.default_rng(7)
    emb, issame = structured(rng, 120, 16, 1.1)
    folds = np.repeat([3, 1, 2], 40)  # labels need not be 0..K-1 nor sorted in the file
    m = verification_metrics(emb, issame, folds=folds)
    emb64 = emb.astype(np.float64)
    emb64 /= np.linalg.norm(emb64, axis=1, keepdims=True)
    dist = list(((emb64[0::2] - emb64[1::2]) ** 2).sum(1))
    ref_fold_lists = [list(np.nonzero(folds == f)[0]) for f in (1, 2, 3)]
    racc, rstd, _ = ref_accuracy_from_dist(dist, list(issame), ref_fold_lists)
    assert m["accuracy"] == pytest.approx(racc, abs=1e-12)
    assert len(m["fold_accuracies"]) == 3


def test_auc_equals_mann_whitney_probability():
    rng = np.random.default_rng(11)
    scores = np.round(rng.normal(size=400), 1)  # rounding creates ties
    issame = rng.random(400) < 0.4
    scores[issame] += 0.8
    fpr, tpr = roc_curve(scores, issame)
    pos, neg = scores[issame], scores[~issame]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    assert np.trapz(tpr, fpr) == pytest.approx(greater + 0.5 * ties, abs=1e-12)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_tar_at_far_against_sorted_negatives():
    rng = np.random.default_rng(3)
    neg = rng.normal(size=1000)
    pos = rng.normal(loc=2.0, size=200)
    scores = np.r_[pos, neg]
    issame = np.r_[np.ones(200, bool), np.zeros(1000, bool)]
    fpr, tpr = roc_curve(scores, issame)
    neg_desc = np.sort(neg)[::-1]
    # FAR 1e-2 lets exactly 10 of 1000 negatives through: accept scores above the 11th highest negative.
    tar10 = np.mean(pos > neg_desc[10])
    tar11 = np.mean(pos > neg_desc[11])
    assert tar_at_far(fpr, tpr, 1e-2, 1000) == pytest.approx(tar10)
    assert tar_at_far(fpr, tpr, 0.0105, 1000) == pytest.approx((tar10 + tar11) / 2)
    assert math.isnan(tar_at_far(fpr, tpr, 1e-4, 1000))  # 0.1 negative: not measurable


def test_metrics_dict_and_json():
    rng = np.random.default_rng(0)
    emb, issame = structured(rng, 400, 16, 0.8)
    m = verification_metrics(emb, issame)
    assert set(m["tar_at_far"]) == {1e-2, 1e-3, 1e-4}
    assert math.isnan(m["tar_at_far"][1e-3]) == (m["num_negative"] * 1e-3 < 1)
    assert 0 <= m["tar_at_far"][1e-2] <= 1 and 0.5 < m["auc"] <= 1
    assert m["num_pairs"] == 400 and m["num_positive"] + m["num_negative"] == 400
    j = metrics_to_json(m, include_roc=True)
    assert j["tar_at_far"]["1e-04"] is None and j["tar_at_far"]["1e-02"] == m["tar_at_far"][1e-2]
    assert len(j["roc"]["fpr"]) == len(m["roc"][0])
    with pytest.raises(DataError):
        verification_metrics(emb[:-2], issame)
    bad = emb.copy()
    bad[3, 0] = np.nan
    with pytest.raises(DataError):
        verification_metrics(bad, issame)


def test_large_set_matches_reference():
    # LFW-size sets and larger (12,000 embeddings); speed is measured in benchmarks/bench_verification.py
    rng = np.random.default_rng(1)
    emb, issame = structured(rng, 6000, 64, 1.0)
    got = verification_metrics(emb, issame)
    ref_mean, ref_std, _ = ref_accuracy(emb, issame)
    assert got["accuracy"] == pytest.approx(ref_mean, abs=1e-12)
    assert got["accuracy_std"] == pytest.approx(ref_std, abs=1e-12)

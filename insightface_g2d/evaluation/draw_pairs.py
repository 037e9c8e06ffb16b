"""Verification pairs drawn from a labelled dataset (`g2d-eval make-bin`, `config.eval.pairs` specs).

Half the pairs are genuine (two different items of one identity), half impostor (items of two
identities); no pair is drawn twice (a pair and its mirror are the same pair). A dataset with fewer
distinct pairs than asked is refused, naming how many there are: a set padded with repeats would
report its accuracy +- std as if it had that many independent pairs.
"""
import numpy as np

from ..errors import ConfigError, DataError


def identity_members(labels):
    """[int array of item indices] per identity (label -1, an unreadable record, belongs to none)."""
    labels = np.asarray(labels)
    ids, inverse = np.unique(labels, return_inverse=True)
    return [np.nonzero(inverse == k)[0] for k in range(len(ids)) if ids[k] >= 0]


def distinct_pair_counts(labels):
    """(genuine, impostor): how many distinct unordered pairs of each class the labels allow."""
    sizes = np.array([len(m) for m in identity_members(labels)], dtype=np.int64)
    total = int(sizes.sum())
    genuine = int((sizes * (sizes - 1) // 2).sum())
    return genuine, total * (total - 1) // 2 - genuine


def max_pairs(genuine, impostor):
    """The largest pair count whose half (genuine: floor, impostor: ceil) both classes can fill."""
    return max(0, min(2 * genuine + 1, 2 * impostor))


def check_pair_count(labels, num_pairs, option="the number of pairs"):
    """DataError when `labels` allow fewer distinct pairs than num_pairs asks (half genuine)."""
    if num_pairs < 2:
        raise ConfigError(f"{option} = {num_pairs}: at least 2 pairs are needed (one genuine, one impostor)")
    members = identity_members(labels)
    if len(members) < 2 or not any(len(m) >= 2 for m in members):
        raise DataError("evaluation pairs need at least two identities and one with two or more images")
    genuine, impostor = distinct_pair_counts(labels)
    n_pos = num_pairs // 2
    if n_pos <= genuine and num_pairs - n_pos <= impostor:
        return
    images = sum(len(m) for m in members)
    raise DataError(f"{option} = {num_pairs} asks for {n_pos} genuine and {num_pairs - n_pos} impostor pairs, but the "
                    f"{images} images of {len(members)} identities allow only {genuine} distinct genuine and "
                    f"{impostor} distinct impostor pairs; ask for at most {max_pairs(genuine, impostor)} pairs, "
                    "or use a dataset with more images per identity")


def _all_pairs(groups_a, groups_b=None):
    """Every unordered pair within each group (groups_b None) or across two item groups."""
    if groups_b is None:
        return [(m[i], m[j]) for m in groups_a for i in range(len(m)) for j in range(i + 1, len(m))]
    return [(a, b) for a in groups_a for b in groups_b]


def _distinct(count, available, draw, everything, rng):
    """`count` distinct unordered pairs: drawn one by one (`draw()`, repeats redrawn) while they are
    plentiful, chosen from the full list (`everything()`) when count is over half of what exists."""
    if 2 * count > available:
        pool = everything()
        return [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]
    seen, out = set(), []
    while len(out) < count:
        a, b = draw()
        key = (min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            out.append((a, b))
    return out


def make_pairs(labels, num_pairs, seed=0, option="the number of pairs"):
    """(index pairs int [num_pairs, 2], issame bool [num_pairs]) drawn from item labels, half genuine.

    Genuine pairs: two different items of one identity (chosen among identities with >= 2 items);
    impostor pairs: items of two different identities; every pair distinct. Pair order is
    shuffled. DataError (naming `option`) when the labels allow fewer distinct pairs.
    """
    check_pair_count(labels, num_pairs, option)
    rng = np.random.default_rng([int(seed), 0x9A125])
    members = identity_members(labels)
    multi = [m for m in members if len(m) >= 2]
    genuine, impostor = distinct_pair_counts(labels)
    n_pos = num_pairs // 2

    def draw_genuine():
        m = multi[rng.integers(len(multi))]
        a, b = rng.choice(len(m), size=2, replace=False)
        return m[a], m[b]

    def draw_impostor():
        p, q = rng.choice(len(members), size=2, replace=False)
        return members[p][rng.integers(len(members[p]))], members[q][rng.integers(len(members[q]))]

    def all_impostors():
        return [pair for k, m in enumerate(members) for other in members[k + 1:] for pair in _all_pairs(m, other)]

    pos = _distinct(n_pos, genuine, draw_genuine, lambda: _all_pairs(multi), rng)
    neg = _distinct(num_pairs - n_pos, impostor, draw_impostor, all_impostors, rng)
    pairs = np.asarray(pos + neg, dtype=np.int64).reshape(-1, 2)
    same = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    order = rng.permutation(num_pairs)
    return pairs[order], same[order]

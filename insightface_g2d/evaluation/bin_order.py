"""The order in which a pairs list's pairs go into a `.bin`.

A `.bin` carries no folds: every reader (arcface_torch, `g2d-eval verify`) cuts it into 10
contiguous folds. So the pairs are written fold by fold, in the folds `g2d-eval pairs` uses for the
same list (the file's folds, or `verification.default_fold_ids`), and the `.bin` scores what the
list scores. Within a fold the file's order is kept.
"""
import numpy as np

from .verification import default_fold_ids, kfold_ids


def bin_pair_order(issame, folds=None, nfolds=10):
    """(pair order int [N], exact): `exact` is False when the list's folds cannot be the `.bin`'s
    `nfolds` contiguous folds (another number of folds, or sizes other than sklearn KFold's)."""
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    if len(issame) < nfolds:  # too few pairs for any folds: the file order, as it is
        return np.arange(len(issame)), True
    fold_ids = default_fold_ids(issame, nfolds)[0] if folds is None else np.asarray(folds).reshape(-1)
    labels, fold = np.unique(fold_ids, return_inverse=True)
    order = np.argsort(fold, kind="stable")
    exact = len(labels) == nfolds and np.array_equal(fold[order], kfold_ids(len(issame), nfolds))
    return order, bool(exact)


def describe_order(order, exact, nfolds=10):
    """Lines for the user: nothing when the file order is kept and exact, else what was done."""
    lines = []
    if not np.array_equal(order, np.arange(len(order))):
        lines.append(f"pairs written fold by fold, so that the .bin's {nfolds} contiguous folds are the folds "
                     "`g2d-eval pairs` uses for this list (order kept within each fold)")
    if not exact:
        lines.append(f"warning: the list's folds are not {nfolds} folds of equal size, which a .bin (always cut into "
                     f"{nfolds} contiguous folds) cannot keep; the .bin's accuracy can differ slightly from "
                     "`g2d-eval pairs` on the list (give the list a fold column of 0..9 with equal folds to keep them)")
    return lines

"""How much identity a face region carries: Fisherfaces + nearest class mean on raw pixels.

Test and benchmark code (not part of the package): used by tests/test_synthetic.py and
benchmarks/bench_synthetic.py to check that SyntheticFaces identities are
recognisable from the upper face alone, and less so with the lower face hidden. A linear
projection (PCA then LDA) is learned on training identities and applied to held-out identities:
half of each held-out identity's images form the gallery (class means), the other half are
probes; the score is top-1 identification accuracy by cosine similarity.
"""
import cv2
import numpy as np


def pixel_features(imgs, side=32):
    """uint8 [N, H, W, 3] -> float32 [N, side * side*H/W * 3]: downsampled pixels, zero mean, unit norm per image."""
    imgs = np.asarray(imgs)
    h, w = imgs.shape[1:3]
    out_hw = (side, max(1, int(round(side * h / w))))
    f = np.stack([cv2.resize(x, out_hw, interpolation=cv2.INTER_AREA) for x in imgs]).reshape(len(imgs), -1)
    f = f.astype(np.float32)
    f -= f.mean(1, keepdims=True)
    f /= np.linalg.norm(f, axis=1, keepdims=True) + 1e-12
    return f


def _pca_basis(x, k):
    """Top-k principal directions [D, k] of centred x [N, D] (through the smaller Gram matrix)."""
    if x.shape[0] < x.shape[1]:
        ev, u = np.linalg.eigh(x @ x.T)
        order = np.argsort(ev)[::-1][:k]
        ev, u = ev[order], u[:, order]
        keep = ev > ev[0] * 1e-6
        return (x.T @ u[:, keep]) / np.sqrt(ev[keep])
    ev, v = np.linalg.eigh(x.T @ x)
    return v[:, np.argsort(ev)[::-1][:k]]


def fit_fisher(features, labels, pca_dims=150, ridge=1e-4):
    """Fisherfaces projection learned on (features [N, D], labels [N]) -> function [M, D] -> [M, C-1]."""
    labels = np.asarray(labels)
    mu = features.mean(0)
    pca = _pca_basis(features - mu, pca_dims)
    z = (features - mu) @ pca
    classes, inv = np.unique(labels, return_inverse=True)
    means = np.stack([z[inv == k].mean(0) for k in range(len(classes))])
    within = z - means[inv]
    sw = within.T @ within / len(z) + ridge * np.eye(z.shape[1])
    ev, v = np.linalg.eigh(sw)
    whiten = v / np.sqrt(ev)
    _, _, vb = np.linalg.svd((means - means.mean(0)) @ whiten, full_matrices=False)
    proj = pca @ whiten @ vb[: len(classes) - 1].T
    return lambda f: (f - mu) @ proj


def ncm_identification(gallery, probes, gallery_labels, probe_labels):
    """Top-1 accuracy of assigning each probe to the nearest class mean of the gallery (cosine)."""
    def unit(x):
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)

    gallery, probes = unit(gallery), unit(probes)
    gallery_labels, probe_labels = np.asarray(gallery_labels), np.asarray(probe_labels)
    classes = np.unique(gallery_labels)
    means = unit(np.stack([gallery[gallery_labels == c].mean(0) for c in classes]))
    pred = classes[(probes @ means.T).argmax(1)]
    return float((pred == probe_labels).mean())


def gallery_split(labels):
    """bool [N]: True for the gallery half of each identity (its first len // 2 images in order)."""
    labels = np.asarray(labels)
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    return rank < np.bincount(labels)[labels] // 2


def region_identification(train_imgs, train_labels, test_imgs, test_labels, view=None):
    """Identification accuracy on held-out identities when only `view(imgs)` is seen.

    train_imgs, test_imgs: uint8 [N, H, W, 3]; view: uint8 [N, H, W, 3] -> uint8 [N, h, w, 3]
    (crop or occlude; None = whole face), applied to every image. The gallery is the first half of
    each test identity's images (in order), the probes the rest.
    """
    view = view or (lambda x: x)
    proj = fit_fisher(pixel_features(view(train_imgs)), train_labels)
    test_labels = np.asarray(test_labels)
    gal = gallery_split(test_labels)
    g = proj(pixel_features(view(test_imgs[gal])))
    p = proj(pixel_features(view(test_imgs[~gal])))
    return ncm_identification(g, p, test_labels[gal], test_labels[~gal])

"""MaskedPairDataset: (synthetically masked face, clean face, mask alpha, label, index) for G2D stages.

All randomness of item i in epoch e comes from np.random.default_rng([seed, e, i]), so an item is
the same whichever DataLoader worker or distributed rank draws it, and in whatever order.
"""
import numpy as np
import torch
from torch.utils.data import Dataset

from insightface_g2d.data.transforms import hflip, to_tensor
from insightface_g2d.errors import ConfigError, DataError

_DEGRADE_STREAM = 0xDE6  # the degradation's own generator per item: mask and flip draws never shift


class MaskedPairDataset(Dataset):
    """Wraps a face dataset (items (uint8 [S, S, 3] RGB, int label)) into masked/clean pairs.

    mask_prob: probability that an item gets a mask (otherwise masked == clean, alpha == 0).
    styles: mask styles to use (None: the default styles). Builds a MaskSynthesizer(styles) when synthesizer is
      None; with a synthesizer given, each item's style is drawn uniformly from `styles` and passed
      to it (styles=None leaves the choice to the synthesizer).
    flip: mirror masked, clean and alpha together with probability 0.5.
    evaluation: fixed masks (epoch stays 0, set_epoch is ignored) and no flip: for validation and
      test sets.
    degrade: a data.degrade.Degradation drawn on the masked (student) face after the mask and the
      flip, from the item's own stream (None: none); the clean face is never degraded.

    __getitem__(i) -> dict(masked=float32 [3, S, S] in [-1, 1], clean=float32 [3, S, S] in [-1, 1],
                           alpha=float32 [1, S, S] in [0, 1], label=int64 [], index=int64 []).
    """

    def __init__(self, base, mask_prob=1.0, styles=None, seed=0, flip=True, synthesizer=None,
                 evaluation=False, degrade=None):
        if not 0.0 <= float(mask_prob) <= 1.0:
            raise ConfigError(f"mask_prob must be in [0, 1], got {mask_prob}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        self.base = base
        self.mask_prob = float(mask_prob)
        self.styles = None if styles is None else ((styles,) if isinstance(styles, str) else tuple(styles))
        self.seed = int(seed)
        self.evaluation = bool(evaluation)
        self.flip = bool(flip) and not self.evaluation
        self.epoch = 0
        self._custom_synth = synthesizer is not None
        self._synth = synthesizer
        self.degrade = None if self.evaluation else degrade

    def set_epoch(self, epoch):
        """Draw new masks and flips for epoch `epoch` (no effect in evaluation mode)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ConfigError(f"epoch must be an integer >= 0, got {epoch!r}")
        if not self.evaluation:
            self.epoch = int(epoch)

    @property
    def num_classes(self):
        return self.base.num_classes

    def fingerprint(self):
        """The base dataset's fingerprint: the clean faces (what teacher embeddings are computed from)."""
        return self.base.fingerprint()

    def __len__(self):
        return len(self.base)

    def mask_synthesizer(self, size=112):
        """The MaskSynthesizer in use (the default one is built on first use, per process)."""
        if self._synth is None:
            from insightface_g2d.masks.synthesizer import MaskSynthesizer  # built lazily: cheap to pickle to workers

            self._synth = MaskSynthesizer(styles=self.styles, size=size)
        return self._synth

    def sample(self, i):
        """Item i as numpy: (masked uint8 [S, S, 3], clean uint8 [S, S, 3], alpha float32 [S, S], label int)."""
        return self._sample(i)[:4]

    def _sample(self, i):
        """sample(i) plus whether the item is mirrored (from the same draws)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        i = int(i) % n
        img, label = self.base[i]
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
            raise DataError(f"item {i} of {type(self.base).__name__} is {img.dtype} {img.shape}; "
                            "expected an aligned uint8 [S, S, 3] RGB face")
        rng = np.random.default_rng([self.seed, self.epoch, i])
        u_mask, u_flip, u_style = rng.random(3)  # always three draws: the stream layout never shifts
        if u_mask < self.mask_prob:
            style = None
            if self._custom_synth and self.styles is not None:
                style = self.styles[min(int(u_style * len(self.styles)), len(self.styles) - 1)]
            masked, alpha = self.mask_synthesizer(img.shape[0]).apply(img, rng, style=style)
            alpha = np.asarray(alpha, np.float32)
        else:
            masked, alpha = img, np.zeros(img.shape[:2], np.float32)
        flipped = self.flip and bool(u_flip < 0.5)
        if flipped:
            img, masked, alpha = hflip(img), hflip(masked), hflip(alpha)
        if self.degrade is not None:
            masked, alpha = self.degrade.apply(masked, self._degrade_rng(i), alpha)
        return masked, img, alpha, int(label), flipped

    def _degrade_rng(self, i):
        return np.random.default_rng([self.seed, self.epoch, i, _DEGRADE_STREAM])

    def __getitems__(self, indices):
        """Items `indices` as a list of __getitem__ dicts (byte-identical), masked in one call.

        torch's DataLoader calls this with a batch's indices (then collates as usual): each item
        still draws from its own generator, but the mask synthesis, flips and tensor conversion
        run once per batch instead of once per face.
        """
        n = len(self)
        idx = []
        for i in indices:
            if not -n <= i < n:
                raise IndexError(f"index {i} out of range for {n} items")
            idx.append(int(i) % n)
        imgs, labels = [], []
        for i in idx:
            img, label = self.base[i]
            img = np.asarray(img)
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
                raise DataError(f"item {i} of {type(self.base).__name__} is {img.dtype} {img.shape}; "
                                "expected an aligned uint8 [S, S, 3] RGB face")
            imgs.append(img)
            labels.append(int(label))
        synth = self.mask_synthesizer(imgs[0].shape[0]) if self.mask_prob > 0 and imgs else None
        if len({img.shape for img in imgs}) > 1 or (synth is not None and not hasattr(synth, "apply_uniforms")):
            return [self[i] for i in indices]  # mixed sizes, or a custom synthesizer: face by face
        clean = np.stack(imgs) if imgs else np.zeros((0, 112, 112, 3), np.uint8)
        from .synthesizer import PARAMS_PER_FACE

        draws = np.empty((len(idx), 3))
        params = np.zeros((len(idx), PARAMS_PER_FACE))
        for k, i in enumerate(idx):  # the per-item stream: 3 draws, then the synthesizer's
            rng = np.random.default_rng([self.seed, self.epoch, i])
            draws[k] = rng.random(3)
            if draws[k, 0] < self.mask_prob:
                params[k] = rng.random(PARAMS_PER_FACE)
        sel = draws[:, 0] < self.mask_prob
        masked = clean.copy()
        alpha = np.zeros(clean.shape[:3], np.float32)
        if sel.any():
            style = None
            if self._custom_synth and self.styles is not None:
                pick = np.minimum((draws[sel, 2] * len(self.styles)).astype(np.int64), len(self.styles) - 1)
                style = [self.styles[j] for j in pick]
            masked[sel], alpha[sel] = synth.apply_uniforms(clean[sel], params[sel], styles=style)
        flipped = (draws[:, 1] < 0.5) & self.flip
        if flipped.any():
            clean[flipped] = clean[flipped][:, :, ::-1]
            masked[flipped] = masked[flipped][:, :, ::-1]
            alpha[flipped] = alpha[flipped][:, :, ::-1]
        if self.degrade is not None:
            for k, i in enumerate(idx):
                masked[k], alpha[k] = self.degrade.apply(masked[k], self._degrade_rng(i), alpha[k])
        masked_t, clean_t = to_tensor(masked), to_tensor(clean)
        alpha_t = torch.from_numpy(alpha)[:, None]
        return [{"flipped": torch.tensor(bool(flipped[k])), "masked": masked_t[k], "clean": clean_t[k],
                 "alpha": alpha_t[k], "label": torch.tensor(labels[k], dtype=torch.int64),
                 "index": torch.tensor(i, dtype=torch.int64)} for k, i in enumerate(idx)]

    def __getitem__(self, i):
        masked, clean, alpha, label, flipped = self._sample(i)
        return {
            "flipped": torch.tensor(flipped),
            "masked": to_tensor(masked),
            "clean": to_tensor(clean),
            "alpha": torch.from_numpy(np.ascontiguousarray(alpha, np.float32))[None],
            "label": torch.tensor(label, dtype=torch.int64),
            "index": torch.tensor(int(i) % len(self), dtype=torch.int64),
        }

    def __repr__(self):
        return (f"MaskedPairDataset({self.base!r}, mask_prob={self.mask_prob}, styles={self.styles}, "
                f"seed={self.seed}, flip={self.flip}, evaluation={self.evaluation}, degrade={self.degrade})")

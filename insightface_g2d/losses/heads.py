"""Classification heads: FC + softmax (the `classify` stage) and arcface_torch's margin softmax.

Both take embeddings N x F and int64 labels N and return (loss scalar, logits N x C). The margin
head computes in float32 with autocast off (a margin added to a float16 cosine near 1 is lost).
Neither reads a device tensor back to the host unless asked to check the labels (`check=True`, the
default; the training loop checks them on the host copy of the batch instead).
"""
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from .fp32 import float32_math


def check_labels(labels, num_classes):
    """Raise DataError when a label is outside [0, num_classes) (-1, "no target", is allowed)."""
    if labels.numel() == 0:
        return
    low, high = (int(v) for v in torch.stack([labels.min(), labels.max()]).tolist())  # one host read
    if low < -1 or high >= num_classes:
        raise DataError(
            f"labels range [{low}, {high}] but the head has {num_classes} classes: set num_classes to the "
            "dataset's number of identities (labels must be 0..num_classes-1)"
        )


class SoftmaxHead(nn.Module):
    """Ordinary Linear(F -> C) + cross-entropy over the (frozen) embedding.

    forward(emb N x F, labels N) -> (mean cross-entropy, logits N x C).
    """

    def __init__(self, num_features, num_classes, bias=True):
        super().__init__()
        self.fc = nn.Linear(num_features, num_classes, bias=bias)

    @property
    def num_classes(self):
        return self.fc.out_features

    def forward(self, emb, labels, check=True):
        labels = labels.view(-1).long()
        if check:
            check_labels(labels, self.fc.out_features)
        logits = self.fc(emb)
        return F.cross_entropy(logits, labels, ignore_index=-1), logits


def margin_kind(margin_list):
    """Which margin arcface_torch's CombinedMarginLoss applies for (m1, m2, m3): "arcface" or "cosface".

    arcface_torch's rule: m1 == 1 and m3 == 0 -> additive angular margin m2 (ArcFace; m2 = 0 is the
    plain normalised softmax); otherwise m3 > 0 -> additive cosine margin m3 (CosFace), m1 and m2
    ignored; anything else is rejected.
    """
    try:
        m1, m2, m3 = (float(m) for m in margin_list)
    except (TypeError, ValueError, OverflowError):  # not iterable, not 3 items, items not (float-sized) numbers
        raise ConfigError(f"margin_list must be 3 numbers (m1, m2, m3), e.g. (1.0, 0.5, 0.0) for ArcFace, "
                          f"got {margin_list!r}") from None
    if m1 == 1.0 and m3 == 0.0:
        return "arcface"
    if m3 > 0.0:
        return "cosface"
    raise ConfigError(
        f"margin_list {tuple(margin_list)} is not supported (as in arcface_torch): use (1.0, m2, 0.0) for "
        "ArcFace, e.g. (1.0, 0.5, 0.0), or (1.0, 0.0, m3) for CosFace, e.g. (1.0, 0.0, 0.4)"
    )


@float32_math
def margin_logits(cos, labels, margin_list=(1.0, 0.5, 0.0), scale=64.0, interclass_filtering_threshold=0.0):
    """arcface_torch's CombinedMarginLoss on cosine logits. cos N x C in [-1, 1], labels N -> N x C.

    - interclass filtering (threshold t > 0): every non-target cosine above t is set to 0 (rows with
      label -1 have no target, so all their cosines above t are).
    - ArcFace: target logit cos(theta) -> cos(theta + m2). As in arcface_torch the margin is applied
      without gradient, so the gradient reaches cos(theta) unchanged (straight-through), which keeps it
      finite at cos = +-1; no "easy margin" (arcface_torch defines the flag but never uses it).
    - CosFace: target logit -> cos(theta) - m3, with gradient.
    Then everything is multiplied by `scale`. Labels -1 mark rows without a target (no margin).
    """
    kind = margin_kind(margin_list)
    _, m2, m3 = (float(m) for m in margin_list)
    labels = labels.view(-1).long()
    valid = labels != -1
    col = labels.clamp_min(0).unsqueeze(1)  # rows without a target point at column 0, masked out by target_mask
    target_mask = torch.zeros_like(cos, dtype=torch.bool).scatter_(1, col, valid.unsqueeze(1))
    if interclass_filtering_threshold > 0:
        cos = cos.masked_fill((cos > interclass_filtering_threshold) & ~target_mask, 0.0)
    target = cos.gather(1, col)
    if kind == "arcface":
        with torch.no_grad():
            shifted = torch.cos(torch.arccos(target.clamp(-1.0, 1.0)) + m2)
        new_target = target + (shifted - target).detach()
    else:
        new_target = target - m3
    logits = torch.where(target_mask, new_target, cos)  # no host sync (no nonzero / index lists)
    return logits * scale


class MarginHead(nn.Module):
    """Margin softmax over normalised embeddings and class centres, as arcface_torch trains.

    logits = margin(normalize(emb) @ normalize(W).T) * scale with arcface_torch's margin_list
    semantics (see `margin_logits`); loss = cross-entropy (rows with label -1 ignored).
    W is C x F initialised N(0, 0.01) like arcface_torch's PartialFC.
    forward(emb N x F, labels N) -> (loss, logits N x C) where the returned logits are
    scale * cos(theta) WITHOUT the margin (what prediction and training accuracy should use).
    """

    def __init__(self, num_features, num_classes, margin_list=(1.0, 0.5, 0.0), scale=64.0,
                 interclass_filtering_threshold=0.0):
        super().__init__()
        self.kind = margin_kind(margin_list)
        m1, m2, m3 = (float(m) for m in margin_list)
        if self.kind == "cosface" and (m1 != 1.0 or m2 != 0.0):
            warnings.warn(
                f"margin_list {tuple(margin_list)}: with m3 > 0 arcface_torch applies only the CosFace "
                f"margin m3={m3}; m1={m1} and m2={m2} are ignored here too", stacklevel=2,
            )
        self.margin_list = (m1, m2, m3)
        self.scale = float(scale)
        self.interclass_filtering_threshold = float(interclass_filtering_threshold)
        self.weight = nn.Parameter(torch.normal(0.0, 0.01, (num_classes, num_features)))

    @property
    def num_classes(self):
        return self.weight.shape[0]

    @float32_math
    def cosine(self, emb):
        """N x F -> N x C cosines, clamped to [-1, 1] (float32)."""
        return F.linear(F.normalize(emb.to(self.weight.dtype)), F.normalize(self.weight)).clamp(-1.0, 1.0)

    @float32_math
    def forward(self, emb, labels, check=True):
        labels = labels.view(-1).long()
        if check:
            check_labels(labels, self.weight.shape[0])
        cos = self.cosine(emb)
        logits = margin_logits(cos, labels, self.margin_list, self.scale, self.interclass_filtering_threshold)
        loss = F.cross_entropy(logits, labels, ignore_index=-1)
        return loss, cos.detach() * self.scale

    def extra_repr(self):
        return (f"num_features={self.weight.shape[1]}, num_classes={self.weight.shape[0]}, "
                f"margin_list={self.margin_list}, scale={self.scale}")


def build_head(kind="softmax", num_features=512, num_classes=None, **kwargs):
    """`kind` "softmax" -> SoftmaxHead, "margin" (or "arcface"/"cosface" shorthands) -> MarginHead."""
    if num_classes is None or int(num_classes) < 1:
        raise ConfigError(f"a classification head needs num_classes >= 1, got {num_classes!r}")
    if kind == "softmax":
        return SoftmaxHead(num_features, int(num_classes), **kwargs)
    if kind == "margin":
        return MarginHead(num_features, int(num_classes), **kwargs)
    if kind == "arcface":
        return MarginHead(num_features, int(num_classes), margin_list=(1.0, 0.5, 0.0), **kwargs)
    if kind == "cosface":
        return MarginHead(num_features, int(num_classes), margin_list=(1.0, 0.0, 0.4), **kwargs)
    raise ConfigError(f"unknown head kind {kind!r}; use 'softmax' or 'margin'")

"""A one-weight stage kind whose divergence is predictable, for the resume and integrity tests.

`quad` trains w (one float32, starting at 1) on loss w**2 with plain SGD: each step
w <- w - lr * 2w = (1 - 2 lr) w, so lr 3 multiplies w by -5 per step and the loss 25**k overflows
float32 (to inf) at step 29, while lr 0.3 shrinks w by 0.4 per step. `poison_at` puts a NaN into
the weight after the update of that step (the loss of that step stays finite).
"""
import dataclasses
from typing import Optional

import pytest
import torch
from torch import nn

from insightface_g2d.training.kinds import STAGE_KINDS, KindSettings, Stage


@dataclasses.dataclass(frozen=True)
class QuadSettings(KindSettings):
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_power: float = 0.0
    poison_at: Optional[int] = None
    grad_clip: Optional[float] = None  # unclipped: the divergence below is exact


class QuadStage(Stage):
    kind = "quad"
    settings = QuadSettings
    loss_weights = dict(sq=1.0)
    trainable = ("quad",)
    allowed_train = ("quad",)

    def module_factories(self, num_classes):
        def build():
            m = nn.Linear(1, 1, bias=False)
            nn.init.ones_(m.weight)
            return m
        return {"quad": build}

    def mask_prob(self):
        return 0.0

    def step(self, batch, ctx):
        w = ctx.raw("quad").weight
        terms = {"sq": w.pow(2).sum()}
        ctx.update("main", terms, self.spec.losses)
        if self.spec.poison_at == ctx.global_step + 1:
            with torch.no_grad():
                w.fill_(float("nan"))
        return terms


@pytest.fixture
def quad_kind(monkeypatch):
    """The quad kind registered for one test (the registry line, undone afterwards)."""
    monkeypatch.setitem(STAGE_KINDS, QuadStage.kind, QuadStage)
    return QuadStage


def expected_w(schedule):
    """w after SGD steps of w**2 at the learning rates in `schedule`, in float32 like the optimizer."""
    w = torch.ones(1, 1)
    for lr in schedule:
        w = w.add(2 * w, alpha=-lr)
    return w

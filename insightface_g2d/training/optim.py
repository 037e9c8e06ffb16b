"""Optimizers and the learning-rate schedule (linear warm-up, then polynomial decay to 0).

The schedule has the shape of arcface_torch's PolynomialLRWarmup, written as a closed form of the
number of finished optimizer steps t (warm-up w, total T, power p):
    t < w:   lr = base * (t + 1) / w          (never exactly 0, so the first step moves)
    t >= w:  lr = base * (1 - (t - w) / (T - w)) ** p
"""
import torch

from ..errors import ConfigError


def build_optimizer(params, optimizer="sgd", lr=0.1, betas=(0.9, 0.999), momentum=0.9, weight_decay=0.0):
    """SGD (momentum), AdamW or Adam over `params` (a non-empty list)."""
    if not params:
        raise ConfigError("a stage has nothing to train: its modules have no trainable parameters")
    name = str(optimizer).lower()
    wd = float(weight_decay or 0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(momentum or 0.0), weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=wd)
    raise ConfigError(f"unknown optimizer {optimizer!r}; use sgd, adamw or adam")


def lr_groups(models, names, lr, lr_mult=None):
    """Trainable parameters of modules `names` (a ModelSet) as optimizer param groups: one group at
    `lr`, plus one group per module of `lr_mult` ({module: factor}) at lr * factor. Without
    multipliers: the plain parameter list (one group, as before)."""
    lr_mult = {m: float(f) for m, f in (lr_mult or {}).items() if m in names}
    if not lr_mult:
        return models.parameters(names)
    groups = []
    plain = [n for n in names if n not in lr_mult]
    if plain and models.parameters(plain):
        groups.append({"params": models.parameters(plain), "lr": lr})
    for name, factor in lr_mult.items():
        params = models.parameters([name])
        if params:
            groups.append({"params": params, "lr": lr * factor})
    return groups


def base_lrs(param_groups, lr):
    """The base lr of each optimizer param group that `lr_groups` gave (its plain list: one at `lr`)."""
    if param_groups and isinstance(param_groups[0], dict):
        return [g["lr"] for g in param_groups]
    return [lr]


def lr_factor(step, warmup, total, power=1.0):
    """Multiplier of the base lr for the optimizer step that follows `step` finished steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    return max(0.0, 1.0 - (step - warmup) / (total - warmup)) ** power


class WarmupPolyLR:
    """Sets every param group's lr to base_lr * lr_factor(step). state_dict holds the step count."""

    def __init__(self, optimizer, warmup, total, power=1.0):
        self.optimizer = optimizer
        self.warmup, self.total, self.power = int(warmup), int(total), float(power)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def _apply(self):
        f = lr_factor(self.last_step, self.warmup, self.total, self.power)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self):
        self.last_step += 1
        self._apply()

    def set_base_lrs(self, lrs):
        """New base rates (one per param group), keeping the position in the schedule."""
        self.base_lrs = [float(b) for b in lrs]
        self._apply()

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs), "warmup": self.warmup,
                "total": self.total, "power": self.power}

    def load_state_dict(self, state):
        self.last_step = int(state["last_step"])
        self.base_lrs = [float(b) for b in state["base_lrs"]]
        self._apply()

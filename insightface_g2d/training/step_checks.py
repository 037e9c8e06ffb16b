"""The numeric guard and the stop request of one optimizer step, at one host sync and one all-reduce.

During a step the trainer records, as device tensors, whether each loss term and each optimizer's
gradient norm is finite (no host sync). At the end of the optimizer step (`StepChecks.resolve`)
these flags and the host's stop request go into one vector, one all-reduce (MAX) tells every rank
what any rank saw, and one transfer brings it to the host. A non-finite term or (without loss
scaling) gradient then stops the stage on every rank: the optimizer step that saw it has already
run in memory, but nothing is written after it, so the last checkpoint is the last good state.

With float16 loss scaling a non-finite gradient is an overflow: the GradScaler skips that step and
lowers the scale. `OverflowGuard` stops a run whose every step overflows instead of letting it
skip silently forever.
"""
import torch
import torch.distributed as dist

from ..errors import TrainingError
from ..losses.guards import check_finite

# Consecutive overflowed (skipped) float16 steps that stop a stage. A healthy run skips a handful
# while the scale settles from 2^16; after 32 in a row the scale is 2^16 / 2^32 < 1e-4.
MAX_OVERFLOW_STEPS = 32


def grad_norm(params):
    """Total 2-norm of the gradients of `params` as a 0-dim tensor (no host sync), or None."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    return torch.nn.utils.get_total_norm(grads, 2.0, error_if_nonfinite=False)


def clip_to(params, max_norm, norm):
    """Scale the gradients to total norm <= max_norm given their norm `norm`, as clip_grad_norm_;
    non-finite gradients are left as they are (the guard names them, then stops)."""
    safe = torch.where(torch.isfinite(norm), norm, torch.zeros_like(norm))
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, safe)


def nonfinite_names(named_params):
    """Names of parameters whose gradient has a NaN or inf (the failure path: syncs freely)."""
    return [n for n, p in named_params if p.grad is not None and not bool(torch.isfinite(p.grad).all())]


class OverflowGuard:
    """Counts consecutive overflowed float16 steps; raises past `limit`."""

    def __init__(self, limit=MAX_OVERFLOW_STEPS):
        self.limit, self.run, self.total = int(limit), 0, 0

    def update(self, overflowed, where, scale=None):
        if not overflowed:
            self.run = 0
            return
        self.run += 1
        self.total += 1
        if self.run >= self.limit:
            now = f" (loss scale now {scale:g})" if scale is not None else ""
            raise TrainingError(
                f"{where}: the last {self.run} optimizer steps all overflowed in float16 and were skipped by the "
                f"GradScaler{now}; lower the learning rate, check the inputs, or set amp_dtype = 'bfloat16' or "
                "fp16 = False; then resume from the last checkpoint")


class StepResult:
    """What `StepChecks.resolve` found: per-record flags (local and any rank) and the stop request."""

    def __init__(self, records, local, anywhere, stop):
        self.records, self.local, self.anywhere, self.stop = records, local, anywhere, stop

    def bad(self, kind):
        """[(record, seen here)] of the records of `kind` ("terms" | "grads") non-finite on some rank."""
        out = []
        for rec, here, anywhere in zip(self.records, self.local, self.anywhere):
            if rec[0] == kind and anywhere:
                out.append((rec, here))
        return out


class StepChecks:
    """Collects the device flags of one optimizer step; `resolve` syncs them once."""

    def __init__(self, rt):
        self.rt = rt
        self.device = rt.device if rt.cuda else torch.device("cpu")
        self.records, self.flags = [], []

    def add_terms(self, group, terms):
        """Flag the loss terms {name: tensor or number}; plain numbers are checked here and now."""
        plain = {k: v for k, v in terms.items() if not torch.is_tensor(v) and v is not None}
        if plain:
            check_finite(plain)
        tensors = {k: v.detach() for k, v in terms.items() if torch.is_tensor(v)}
        if tensors:
            bad = torch.stack([~torch.isfinite(v).all().to(self.device) for v in tensors.values()]).any()
            self.records.append(("terms", group, tensors))
            self.flags.append(bad)

    def add_grads(self, group, norm):
        if norm is not None:
            self.records.append(("grads", group, None))
            self.flags.append(~torch.isfinite(norm).to(self.device))

    def resolve(self, stop_requested=False):
        """One all-reduce (distributed runs) and one host transfer for everything recorded."""
        local = torch.stack(self.flags).float() if self.flags else torch.zeros(0, device=self.device)
        local = torch.cat([local, torch.full((1,), float(bool(stop_requested)), device=self.device)])
        if self.rt.distributed:
            reduced = local.clone()
            dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
            both = torch.stack([local, reduced]).tolist()
        else:
            both = [local.tolist()] * 2
        records = self.records
        self.records, self.flags = [], []
        n = len(records)
        return StepResult(records, [v > 0 for v in both[0][:n]], [v > 0 for v in both[1][:n]], both[1][n] > 0)

"""PNG grids of faces during training: one row each for masked, restored (if any) and clean faces."""

import torch

from ..data.grids import compose_grid
from ..data.image_io import encode_image_bytes, save_image_bytes
from ..data.transforms import to_image


def face_grid(rows, pad=2):
    """rows: list of N x 3 x H x W tensors in [-1, 1] -> uint8 RGB image (rows stacked, N per row)."""
    return compose_grid([to_image(row) for row in rows], pad=pad)


def preview_batch(dataset, count=8):
    """The first `count` items of a MaskedPairDataset, collated: dict of tensors (fixed across the run)."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("masked", "clean")}


@torch.no_grad()
def write_preview(path, restorer, batch, ctx, within=None):
    """Grid of masked / restored / clean faces of `batch`, the restored row drawn by stage
    `restorer`'s restore() (none when `restorer` is None), computed by eval-mode copies of the
    modules: the live modules' train/eval modes (and weights) are never touched. Written atomically
    (data.image_io.save_image_bytes; folders below `within` are never links): a failed write is an
    OSError with its errno (disk full, read-only, ...), which the runner reports in one line; never
    a half-written PNG."""
    view = _PreviewContext(PreviewModels(ctx.models), ctx.device)
    masked = batch["masked"].to(ctx.device)
    rows = [masked]
    restored = restorer.restore(masked, view) if restorer is not None else None
    if restored is not None:
        rows.append(restored.float())
    rows.append(batch["clean"].to(ctx.device))
    return save_image_bytes(path, encode_image_bytes(face_grid(rows), ".png"), within)


class PreviewModels:
    """The run's ModelSet as a preview sees it: `get(name)` hands out an eval-mode deep copy."""

    def __init__(self, models):
        self._models = models
        self._copies = {}

    def __contains__(self, name):
        return name in self._models

    def get(self, name):
        from .modes import eval_copy

        if name not in self._copies:
            self._copies[name] = eval_copy(self._models.get(name))
        return self._copies[name]


class _PreviewContext:
    def __init__(self, models, device):
        self.models, self.device = models, device

"""PNG grids of faces during training: one row each for masked, restored (if any) and clean faces."""

import numpy as np
import torch

from ..data.transforms import to_image


def face_grid(rows, pad=2):
    """rows: list of N x 3 x H x W tensors in [-1, 1] -> uint8 RGB image (rows stacked, N per row)."""
    strips = []
    for row in rows:
        imgs = to_image(row)  # N x H x W x 3
        n, h, w, _ = imgs.shape
        strip = np.full((h, n * (w + pad) - pad, 3), 255, np.uint8)
        for i in range(n):
            strip[:, i * (w + pad):i * (w + pad) + w] = imgs[i]
        strips.append(strip)
    width = max(s.shape[1] for s in strips)
    out = []
    for i, s in enumerate(strips):
        if s.shape[1] < width:
            s = np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255)
        out.append(s)
        if i < len(strips) - 1:
            out.append(np.full((pad, width, 3), 255, np.uint8))
    return np.concatenate(out)


def write_png(path, rgb):
    """Encode in memory, then write atomically: a failed write is an OSError with its errno (disk
    full, read-only, ...), which the runner reports in one line; never a half-written PNG."""
    from ..data.image_io import encode_image_bytes
    from ..fileio import atomic_open

    data = encode_image_bytes(rgb, ".png")
    with atomic_open(path, suffix=".tmp") as f:
        f.write(data)
    return path


def preview_batch(dataset, count=8):
    """The first `count` items of a MaskedPairDataset, collated: dict of tensors (fixed across the run)."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("masked", "clean")}


@torch.no_grad()
def write_preview(path, restorer, batch, ctx):
    """Grid of masked / restored / clean faces of `batch`, the restored row drawn by stage
    `restorer`'s restore() (none when `restorer` is None), computed by eval-mode copies of the
    modules: the live modules' train/eval modes (and weights) are never touched."""
    view = _PreviewContext(PreviewModels(ctx.models), ctx.device)
    masked = batch["masked"].to(ctx.device)
    rows = [masked]
    restored = restorer.restore(masked, view) if restorer is not None else None
    if restored is not None:
        rows.append(restored.float())
    rows.append(batch["clean"].to(ctx.device))
    return write_png(path, face_grid(rows))


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

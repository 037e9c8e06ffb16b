"""Stop training with a clear message as soon as a loss term stops being a finite number."""
import math

import torch

from ..errors import TrainingError


def check_finite(terms, step=None):
    """Raise TrainingError naming every non-finite entry of `terms` ({name: tensor or number}).

    Tensors may have any shape (all elements are checked) and live on any device; all tensor terms
    are checked with one device-to-host transfer.
    """
    names, flags, bad = [], [], []
    for name, value in terms.items():
        if torch.is_tensor(value):
            names.append(name)
            flags.append(torch.isfinite(value.detach()).all())
        elif value is not None and not math.isfinite(float(value)):
            bad.append(name)
    if flags:
        ok = torch.stack([f.to(flags[0].device) for f in flags]).tolist()
        bad += [n for n, good in zip(names, ok) if not good]
    if bad:
        shown = []
        for name in bad:
            value = terms[name]
            if torch.is_tensor(value):
                value = value.detach().float()
                value = value.item() if value.numel() == 1 else "non-finite elements"
            shown.append(f"{name}={value}")
        where = f" at step {step}" if step is not None else ""
        raise TrainingError(
            f"non-finite loss term(s){where}: {', '.join(shown)}. Lower the learning rate, check the "
            "inputs and teacher embeddings for NaN/inf, or disable fp16; then resume from the last checkpoint."
        )

"""Count multiply-accumulates of a forward pass by hooking the layers that do the work.

Counts Conv2d (incl. grouped/dilated) and Linear exactly from their output shapes; BN, PReLU and
additions are ignored, as is usual for face-recognition FLOPs tables (arcface_torch reports the same way).
"""
import torch
from torch import nn


def count_macs(model, input_size=(1, 3, 112, 112)):
    """Multiply-accumulates of one forward pass at `input_size` (per batch given)."""
    total = 0

    def conv_hook(module, _inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        total += output.numel() * per_output

    def linear_hook(module, _inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    modes = [(m, m.training) for m in model.modules()]  # every submodule's mode, not only the top one
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_size))
    finally:
        for h in handles:
            h.remove()
        for m, flag in modes:
            m.training = flag
    return total


def count_params(model):
    return sum(p.numel() for p in model.parameters())

"""Small pieces shared by the networks."""
import contextlib

import torch


def autocast_if(enabled, x):
    """Autocast to fp16 when asked and the input is on CUDA; a no-op context on CPU.

    arcface_torch's `fp16=True` means "mixed precision on the GPU"; on a CPU it must not
    silently switch to bfloat16 or fail, so it simply does nothing there.
    """
    if enabled and x.is_cuda:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()

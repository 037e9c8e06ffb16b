"""Run a loss in float32 whatever autocast the caller is under.

Autocast computes matmuls (and a few other ops) in float16/bfloat16 even when their inputs are
float32; losses built from Gram matrices, cosines and angles lose most of their precision there
(triplet angles of near points, margins added to cosines near 1). `float32_math` turns autocast
off for the call's device and promotes half-precision tensor arguments to float32.
"""
import functools

import torch

_HALF = (torch.float16, torch.bfloat16)


def _promote(value):
    if torch.is_tensor(value) and value.dtype in _HALF:
        return value.float()
    return value


def float32_math(fn):
    """Decorator: `fn` runs with autocast disabled, its half-precision tensor arguments as float32."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in list(args) + list(kwargs.values()) if torch.is_tensor(a)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*[_promote(a) for a in args], **{k: _promote(v) for k, v in kwargs.items()})
    return wrapper

"""Numeric precision of a training stage, decided in one place: the trainer.

A stage with `fp16 = True` on CUDA runs its step under autocast, in float16 with a GradScaler
(`amp_dtype = "float16"`, arcface_torch's choice) or in bfloat16 without loss scaling
(`amp_dtype = "bfloat16"`, GPUs that support it: Ampere and newer). Everything else runs in
float32: CPUs ignore `fp16`, as arcface_torch's `fp16` means "mixed precision on the GPU".

Networks built by `get_model(..., fp16=True)` (arcface_torch's API) autocast inside their own
forward, which would bypass this decision (a stage with fp16 = False would still get fp16
activations and gradients, without loss scaling). So the stage kinds build their networks with
fp16=False (also for a `stage=` teacher copied from them, and for the end-of-run evaluation), and
the trainer switches the flag off (`strip_module_autocast`) in a differentiable teacher built from a
user's spec, which may set fp16: the trainer's autocast is the only one.
"""
import contextlib
from dataclasses import dataclass

import torch

from ..errors import ConfigError

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """How a stage's step computes: `dtype` None is float32 without autocast."""

    device_type: str
    dtype: torch.dtype = None

    @property
    def enabled(self):
        return self.dtype is not None

    @property
    def scaled(self):
        """Whether gradients need loss scaling (float16 only; bfloat16 has float32's range)."""
        return self.dtype == torch.float16

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self):
        return torch.amp.GradScaler(self.device_type, enabled=self.scaled)


def check_amp_dtype(value, where="config.amp_dtype"):
    if value not in AMP_DTYPES:
        raise ConfigError(f"{where} must be 'float16' or 'bfloat16', got {value!r}")
    return value


def resolve_precision(fp16, amp_dtype, device, bf16_supported=None):
    """The Precision of a stage with settings (fp16, amp_dtype) on `device`.

    bf16_supported: whether the GPU computes in bfloat16 (None: ask torch.cuda).
    """
    device = torch.device(device)
    if not fp16 or device.type != "cuda":
        return Precision(device.type)
    name = check_amp_dtype(amp_dtype)
    if name == "bfloat16":
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        if not bf16_supported:
            raise ConfigError(
                f"amp_dtype = 'bfloat16' but {device} does not support bfloat16 (it needs an Ampere or newer "
                "GPU); set amp_dtype = 'float16' (autocast with loss scaling) or fp16 = False")
    return Precision(device.type, AMP_DTYPES[name])


def strip_module_autocast(modules):
    """Switch off the arcface_torch-style `fp16` flag (autocast inside forward) of every module
    and submodule, so the trainer's Precision alone decides."""
    for module in modules:
        for sub in module.modules():
            if getattr(sub, "fp16", False) is True:
                sub.fp16 = False

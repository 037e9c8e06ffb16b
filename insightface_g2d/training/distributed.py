"""Process setup: device choice, and torch.distributed when launched by torchrun (WORLD_SIZE > 1).

The backend follows the device: NCCL on CUDA, gloo on CPU. A single process never initialises a
process group, so nothing here needs a network or a GPU.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def cuda(self):
        return self.device.type == "cuda"


def select_device(name, world_size=1, local_rank=0, cuda_available=None, device_count=None):
    """The torch.device a process trains on; ConfigError for a choice that cannot work.

    "auto" -> CUDA when available, else cpu. "cuda" -> cuda:<local_rank> (one GPU per process under
    torchrun). "cuda:N" -> GPU N for a single process; under torchrun (world_size > 1) it would put
    every process on the same GPU (NCCL fails with "Duplicate GPU detected"), so it is refused:
    choose the GPUs with CUDA_VISIBLE_DEVICES instead. "cpu" -> cpu.
    """
    name = (name or "auto").lower()
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if name == "auto":
        name = "cuda" if cuda_available else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if not cuda_available:
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device_count is None:
        device_count = torch.cuda.device_count()
    if dev.index is not None and world_size > 1:
        raise ConfigError(
            f"--device {name} under torchrun would put all {world_size} processes on GPU {dev.index}; use --device "
            "cuda (process LOCAL_RANK takes cuda:LOCAL_RANK) and choose the GPUs with CUDA_VISIBLE_DEVICES")
    index = local_rank if dev.index is None else dev.index
    if index >= device_count:
        what = f"LOCAL_RANK {local_rank}" if dev.index is None else f"--device {name}"
        raise ConfigError(f"{what} needs GPU {index} but {device_count} GPU(s) are visible; start fewer processes "
                          "(torchrun --nproc_per_node) or check CUDA_VISIBLE_DEVICES")
    return torch.device("cuda", index)


def pick_device(name="auto", local_rank=0):
    """select_device for one process (see there)."""
    return select_device(name, 1, local_rank)


def setup(device="auto"):
    """Runtime of this process; initialises the process group when WORLD_SIZE > 1.

    On CUDA the process's GPU becomes the current device (before anything allocates, also for a
    single process on cuda:N) and cudnn picks its fastest kernels once: training inputs are always
    112 x 112, so `cudnn.benchmark` pays off after the first step.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, world_size, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, local_rank, world_size)


def teardown(rt):
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_true(flag, rt):
    """True only when `flag` is true on every rank."""
    if not rt.distributed:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], device=rt.device if rt.cuda else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def any_true(flag, rt):
    """True when `flag` is true on any rank."""
    return not all_true(not flag, rt)


def barrier(rt):
    if rt.distributed:
        dist.barrier()

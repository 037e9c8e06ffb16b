"""Process setup: the process's device (`devices.select_device`), and torch.distributed when
launched by torchrun (WORLD_SIZE > 1).

The backend follows the device: NCCL on CUDA, gloo on CPU. A single process never initialises a
process group, so nothing here needs a network or a GPU.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..devices import select_device


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


def barrier(rt):
    if rt.distributed:
        dist.barrier()

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


def pick_device(name="auto", local_rank=0):
    """"auto" -> cuda:<local_rank> when available, else cpu; "cpu", "cuda", "cuda:N" as given."""
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)
    if name != "cpu":
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def setup(device="auto"):
    """Runtime of this process; initialises the process group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world_size > 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
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

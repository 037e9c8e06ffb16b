"""The one device resolver: a --device / config value -> the torch.device a process runs on."""
import torch

from .errors import ConfigError


def select_device(name="auto", world_size=1, local_rank=0, cuda_available=None, device_count=None):
    """The torch.device a process runs on; ConfigError for a choice that cannot work.

    "auto" -> CUDA when available, else cpu. "cuda" -> cuda:<local_rank> (one GPU per process under
    torchrun). "cuda:N" -> GPU N for a single process; under torchrun (world_size > 1) it would put
    every process on the same GPU (NCCL fails with "Duplicate GPU detected"), so it is refused:
    choose the GPUs with CUDA_VISIBLE_DEVICES instead. "cpu" -> cpu.
    """
    name = (str(name) if name is not None else "auto").lower()
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

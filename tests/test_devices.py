"""The one device resolver (devices.select_device) that g2d-train and every g2d-eval / g2d-cache
--device go through."""
import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.devices import select_device
from insightface_g2d.errors import ConfigError


def test_choices_and_torchrun_ranks():
    assert select_device("auto", cuda_available=False) == torch.device("cpu")
    assert select_device("auto", cuda_available=True, device_count=1) == torch.device("cuda", 0)
    assert select_device("CPU", cuda_available=True) == torch.device("cpu")
    # under torchrun "cuda" is the process's own GPU, cuda:LOCAL_RANK
    assert select_device("cuda", world_size=2, local_rank=1, cuda_available=True, device_count=2) == torch.device("cuda", 1)
    assert select_device("cuda:1", cuda_available=True, device_count=2) == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="would put all 2 processes on GPU 1"):
        select_device("cuda:1", world_size=2, cuda_available=True, device_count=2)
    with pytest.raises(ConfigError, match="LOCAL_RANK 2 needs GPU 2 but 2 GPU"):
        select_device("cuda", world_size=3, local_rank=2, cuda_available=True, device_count=2)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda", cuda_available=False)
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        select_device("tpu", cuda_available=True)


def test_eval_cli_refuses_a_device_that_cannot_work(capsys, monkeypatch):
    from insightface_g2d.cli.evaluate import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = run_cli(main, ["verify", "--model", "g2d_t:random", "--bin", "missing.bin", "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 2 and "CUDA is not available" in err and "\n" not in err.strip()

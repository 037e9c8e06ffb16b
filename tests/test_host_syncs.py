"""The host-sync benchmark counts what a GPU would wait for, and a training step stays at one."""
import importlib.util
from pathlib import Path

import pytest
import torch

from training_tools import one_thread

_threads = pytest.fixture(autouse=True)(one_thread)

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_host_syncs", REPO / "benchmarks" / "bench_host_syncs.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_counter_tells_device_reads_from_host_reads():
    counter = bench.SyncCounter()
    host = torch.arange(4)
    device = torch.ones(4)  # stands for a tensor on the GPU
    counter.mark_host(host)
    counter.active = True
    with counter:
        int(host.max())                     # host data: free
        host.view(2, 2).tolist()            # derived from host data only: free
        y = (device * 2).sum()
        float(y)                            # 1: a device scalar read
        z = device.cpu()                    # 2: a copy to the host ...
        z.numpy()                           # ... after which the data are on the host
        torch.nonzero(device > 0)           # 3: output size depends on device values
    assert counter.current[0] == 3


def test_every_stage_syncs_once_per_step(tmp_path):
    rows, sites = bench.run(world_size=1, steps=2, folder=str(tmp_path))
    assert set(rows) == {"base", "inpaint", "reform", "reform_cache", "classify"}
    for stage, row in rows.items():
        assert row["syncs_per_step"] == 1, (stage, row, sites)  # the step's numeric guard
        assert row["collectives_per_step"] == 0  # one process

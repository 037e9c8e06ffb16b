import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
LFW_CANDIDATES = [
    os.environ.get("G2D_LFW_ROOT", ""),
    str(REPO.parent / "shared" / "data" / "lfw"),
]


@pytest.fixture(scope="session")
def lfw_root():
    """Path of the shared LFW copy (deep-funneled images, pairs.txt, landmarks5.tsv); skip when absent."""
    for cand in LFW_CANDIDATES:
        if cand and (Path(cand) / "landmarks5.tsv").is_file() and (Path(cand) / "lfw-deepfunneled").is_dir():
            return Path(cand)
    pytest.skip("LFW not found: set G2D_LFW_ROOT or place it at ../shared/data/lfw")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread, then restore the setting.

    Tiny nets at small batches gain nothing from intra-op threads, and on a shared 2-core machine
    OpenMP's spinning threads make such tests several times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Pieces of the loop: schedule, sampler, atomic checkpoints, RNG round trip."""
import errno
import os
import random

import numpy as np
import pytest
import torch

from insightface_g2d.errors import CheckpointError, OutputError
from insightface_g2d.training import checkpoint as ckpt_mod
from insightface_g2d.training.checkpoint import atomic_save, capture_rng, load_checkpoint, restore_rng
from insightface_g2d.training.optim import WarmupPolyLR, build_optimizer, lr_factor
from insightface_g2d.training.sampler import ResumableSampler


def test_lr_schedule_warmup_then_polynomial_decay():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], "sgd", lr=0.1, momentum=0.9)
    sched = WarmupPolyLR(opt, warmup=4, total=12, power=2.0)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    # after warm-up: base * (1 - (t - w) / (T - w)) ** p
    assert lrs[4:] == pytest.approx([0.1 * (1 - k / 8) ** 2 for k in range(8)])
    assert opt.param_groups[0]["lr"] == 0.0  # reaches zero at the end
    state = sched.state_dict()
    opt2 = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "sgd", lr=0.1)
    sched2 = WarmupPolyLR(opt2, 4, 12, 2.0)
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert lr_factor(0, 0, 10) == 1.0 and lr_factor(5, 0, 10) == pytest.approx(0.5)


def test_optimizers_get_their_hyperparameters():
    p = [torch.nn.Parameter(torch.zeros(2))]
    adam = build_optimizer(p, "adam", lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.5, 0.9)
    assert isinstance(build_optimizer(p, "adamw", lr=1e-3, weight_decay=0.1), torch.optim.AdamW)
    sgd = build_optimizer(p, "SGD", lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 5e-4


def test_sampler_order_depends_on_seed_and_epoch_and_resumes_mid_epoch():
    s = ResumableSampler(10, seed=3)
    s.set_epoch(0)
    e0 = list(s)
    assert sorted(e0) == list(range(10))
    s.set_epoch(1)
    e1 = list(s)
    assert e0 != e1
    s.set_epoch(0, start=4)
    assert list(s) == e0[4:] and len(s) == 6
    assert list(ResumableSampler(10, seed=3)) == e0  # same seed, same order, fresh object


def test_sampler_splits_ranks_without_overlap_and_pads():
    parts = []
    for rank in range(3):
        s = ResumableSampler(10, num_replicas=3, rank=rank, seed=1)
        s.set_epoch(2)
        parts.append(list(s))
    assert all(len(p) == 4 for p in parts)  # ceil(10 / 3)
    flat = [i for p in parts for i in p]
    assert set(flat) == set(range(10)) and len(flat) == 12  # two indices repeated as padding
    tiny = ResumableSampler(1, num_replicas=4, rank=3)
    assert list(tiny) == [0]


def test_atomic_save_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint_gpu_0.pt"
    atomic_save({"step": torch.tensor(1)}, path)

    def broken_save(obj, f):
        f.write(b"PK\x03\x04 partial")  # half a zip file, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    # the project's one-line error (exit 2 from the CLI), saying what and what to do
    with pytest.raises(OutputError, match=r"cannot write '.*checkpoint_gpu_0\.pt': no space left on the device; "
                                          r"free some space or pass another --output"):
        atomic_save({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"].item() == 1
    assert os.listdir(tmp_path) == ["checkpoint_gpu_0.pt"]  # no temporary file left behind


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(bad)


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    atomic_save({"rng": capture_rng()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])

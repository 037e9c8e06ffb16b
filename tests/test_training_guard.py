"""A stage kind added from outside the loop; the numeric guard; gradient accumulation."""
import dataclasses
from typing import Optional

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from insightface_g2d.errors import TrainingError
from insightface_g2d.training.config import load_config
from insightface_g2d.training.runner import run_training
from insightface_g2d.training.kinds import STAGE_KINDS, KindSettings, Stage

from training_tools import load, module_states, one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)


@dataclasses.dataclass(frozen=True)
class ProbeSettings(KindSettings):
    optimizer: str = "sgd"
    lr: float = 0.5
    momentum: float = 0.0
    weight_decay: float = 0.0
    nan_at: Optional[int] = None
    nan_grad_at: Optional[int] = None


class ProbeStage(Stage):
    """Linear probe on 4 x 4 pooled clean faces. nan_at / nan_grad_at poison step N (1-based)."""

    kind = "probe"
    settings = ProbeSettings
    loss_weights = dict(ce=1.0, l2=0.01)
    trainable = ("probe",)
    allowed_train = ("probe",)

    def module_factories(self, num_classes):
        return {"probe": lambda: nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, num_classes))}

    def mask_prob(self):
        return 0.0

    def step(self, batch, ctx):
        step = ctx.global_step + 1
        weight = ctx.raw("probe")[2].weight
        hook = weight.register_hook(lambda g: g * float("nan")) if step == self.spec.nan_grad_at else None
        logits = ctx.module("probe")(batch["clean"])
        terms = {"ce": F.cross_entropy(logits, batch["label"]), "l2": weight.pow(2).sum()}
        if step == self.spec.nan_at:
            terms["l2"] = terms["l2"] * float("inf")
        try:
            ctx.update("main", terms, self.spec.losses)
        finally:
            if hook is not None:
                hook.remove()
        return terms


@pytest.fixture(autouse=True)
def _probe_kind(monkeypatch):
    monkeypatch.setitem(STAGE_KINDS, ProbeStage.kind, ProbeStage)  # registered for each test, then removed

EXTRA = "config.checkpoint_every = 1\n"


def test_new_stage_kind_runs_in_the_generic_loop(tmp_path):
    cfg = load_config(write_job(tmp_path, '[dict(name="lin", kind="probe", steps=3)]', EXTRA))
    summary = run_training(cfg, output=str(tmp_path / "run"))
    assert summary["status"] == "finished"
    assert set(module_states(tmp_path / "run" / "stage_lin.pt")) == {"probe"}
    assert not (tmp_path / "run" / "model.pt").exists()  # no backbone in this config: no model.pt


def test_nan_loss_stops_the_stage_naming_the_term_and_keeps_the_checkpoint(tmp_path):
    cfg = load_config(write_job(tmp_path, '[dict(name="lin", kind="probe", steps=5, nan_at=3)]', EXTRA))
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as err:
        run_training(cfg, output=str(out))
    msg = str(err.value)
    assert "l2=inf" in msg and "'lin'" in msg and "at step 3" in msg
    assert "checkpoint_gpu_0.pt is intact" in msg
    ckpt = load(out / "checkpoint_gpu_0.pt")
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["modules"]["probe"].values())
    assert not (out / "stage_lin.pt").exists()


def test_nan_gradient_names_the_parameter(tmp_path):
    cfg = load_config(write_job(tmp_path, '[dict(name="lin", kind="probe", steps=4, nan_grad_at=2)]', EXTRA))
    with pytest.raises(TrainingError, match=r"non-finite gradient at step 2 in probe\.2\.weight"):
        run_training(cfg, output=str(tmp_path / "run"))
    assert load(tmp_path / "run" / "checkpoint_gpu_0.pt")["global_step"] == 1


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    big = load_config(write_job(tmp_path, '[dict(name="lin", kind="probe", steps=3, batch_size=8)]'))
    acc = load_config(write_job(tmp_path, '[dict(name="lin", kind="probe", steps=3, batch_size=4, '
                                          'gradient_acc=2)]', name="acc.py"))
    run_training(big, output=str(tmp_path / "big"))
    logged = []
    run_training(acc, output=str(tmp_path / "acc"), on_step=lambda run, s: logged.append(s))
    assert logged == [1, 2, 3]  # steps count optimizer updates, not micro-batches
    a = module_states(tmp_path / "big" / "stage_lin.pt")["probe"]
    b = module_states(tmp_path / "acc" / "stage_lin.pt")["probe"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert not torch.equal(a["2.bias"], torch.zeros_like(a["2.bias"]))


def test_data_loader_workers_do_not_change_the_result(tmp_path):
    stages = '[dict(name="lin", kind="probe", steps=5)]'  # 5 steps of 8 = more than one epoch of 32
    cfgs = [load_config(write_job(tmp_path, stages, f"config.num_workers = {n}\n", name=f"w{n}.py")) for n in (0, 2)]
    for n, cfg in zip((0, 2), cfgs):
        run_training(cfg, output=str(tmp_path / f"w{n}"))
    a = module_states(tmp_path / "w0" / "stage_lin.pt")["probe"]
    b = module_states(tmp_path / "w2" / "stage_lin.pt")["probe"]
    assert all(torch.equal(a[k], b[k]) for k in a)

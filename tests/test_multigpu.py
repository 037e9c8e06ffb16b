"""What a CPU can show of the GPU paths: device choice under torchrun, per-rank RNG state, ONNX
providers on the rank's GPU, float32 losses under autocast, one precision decided by the trainer,
clipping on every device, the float16 overflow guard, no_sync and one all-reduce per step."""
import gc
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from easydict import EasyDict as edict
from torch import nn

from insightface_g2d.errors import ConfigError, TrainingError
from insightface_g2d.training.distributed import Runtime, setup

from training_tools import free_port, one_thread

_threads = pytest.fixture(autouse=True)(one_thread)


# ---------------------------------------------------------------- device selection under torchrun

@pytest.fixture
def fake_gpus(monkeypatch):
    """torch.cuda reports 2 GPUs; set_device and init_process_group are recorded, not run."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", torch.device(d))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(("init", backend)))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    return calls


def torchrun_env(monkeypatch, rank, world_size=2):
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


def test_device_cuda_n_under_torchrun_is_refused_and_cuda_takes_the_local_rank(fake_gpus, monkeypatch):
    torchrun_env(monkeypatch, rank=1)
    with pytest.raises(ConfigError, match=r"--device cuda:0 under torchrun would put all 2 processes on GPU 0; "
                                          r"use --device cuda .*CUDA_VISIBLE_DEVICES"):
        setup("cuda:0")
    assert fake_gpus == []
    for name in ("cuda", "auto"):
        fake_gpus.clear()
        rt = setup(name)
        assert rt.device == torch.device("cuda", 1) and (rt.rank, rt.world_size) == (1, 2)
        assert fake_gpus == [("set_device", torch.device("cuda", 1)), ("init", "nccl")]  # set_device first
    assert torch.backends.cudnn.benchmark is True  # fixed 112 x 112 inputs


def test_single_process_on_cuda_n_sets_its_device(fake_gpus):
    rt = setup("cuda:1")
    assert rt.device == torch.device("cuda", 1) and not rt.distributed
    assert fake_gpus == [("set_device", torch.device("cuda", 1))]


def test_more_processes_than_gpus_is_a_clear_error(fake_gpus, monkeypatch):
    torchrun_env(monkeypatch, rank=3, world_size=4)
    with pytest.raises(ConfigError, match=r"LOCAL_RANK 3 needs GPU 3 but 2 GPU\(s\) are visible"):
        setup("cuda")
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ConfigError, match=r"--device cuda:5 needs GPU 5 but 2 GPU\(s\) are visible"):
        setup("cuda:5")


# ---------------------------------------------------------------- ranks agree on the resume step (2-process runs in test_training_ddp)

def test_resume_agreement_names_each_rank_and_passes_a_rank_error_on(monkeypatch):
    from insightface_g2d.errors import CheckpointError
    from insightface_g2d.training import resume_agreement

    others = {"code": -1}

    def all_gather(out, mine):  # rank 1 of 2 starts over (its checkpoint file is missing)
        out[0].copy_(mine)
        out[1].fill_(others["code"])

    monkeypatch.setattr(resume_agreement.dist, "all_gather", all_gather)
    rt = Runtime(torch.device("cpu"), rank=0, world_size=2)
    with pytest.raises(CheckpointError, match=r"stage 'reform': the processes would resume from different steps "
                                              r"\(rank 0: step 5; rank 1: no checkpoint \(start over\)\)"):
        resume_agreement.agree_on_resume("reform", 5, rt)
    others["code"] = 5
    resume_agreement.agree_on_resume("reform", 5, rt)  # agreeing ranks go on
    with pytest.raises(CheckpointError, match="bad file"):  # this rank's own error, after the exchange
        resume_agreement.agree_on_resume("reform", None, rt, CheckpointError("bad file"))
    others["code"] = -2
    with pytest.raises(CheckpointError, match=r"rank 1: unreadable checkpoint"):
        resume_agreement.agree_on_resume("reform", 5, rt)


# ---------------------------------------------------------------- RNG state of the rank's GPU only

def test_rng_state_is_captured_and_restored_for_the_process_gpu_only(monkeypatch):
    from insightface_g2d.training.checkpoint import capture_rng, restore_rng

    got, put = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    def get_state(device="cuda"):
        got.append(torch.device(device))
        return torch.full((8,), 7, dtype=torch.uint8)

    monkeypatch.setattr(torch.cuda, "get_rng_state", get_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": put.append((int(s[0]), torch.device(device))))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every visible GPU's state captured"))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: pytest.fail("every visible GPU's state restored"))

    state = capture_rng(torch.device("cuda", 1))
    assert got == [torch.device("cuda", 1)]
    restore_rng(state, torch.device("cuda", 0))  # resumed where the rank sees fewer GPUs
    assert put == [(7, torch.device("cuda", 0))]
    put.clear()
    old = dict(state, cuda=[torch.full((8,), i, dtype=torch.uint8) for i in range(8)])  # older format: all 8 GPUs
    restore_rng(old, torch.device("cuda", 1))
    restore_rng(dict(old, cuda=old["cuda"][:1]), torch.device("cuda", 1))  # fewer GPUs than the rank's index
    restore_rng(state, torch.device("cpu"))
    assert put == [(1, torch.device("cuda", 1))]
    assert "cuda" not in capture_rng(torch.device("cpu"))


# ---------------------------------------------------------------- ONNX sessions on the rank's GPU

@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    import warnings

    net = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 8)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, 3, 112, 112),), str(path), input_names=["input.1"],
                          output_names=["embedding"], dynamic_axes={"input.1": {0: "N"}, "embedding": {0: "N"}},
                          dynamo=False)
    return str(path)


@pytest.fixture
def cuda_onnxruntime(monkeypatch):
    """onnxruntime claims a CUDA provider; sessions record the providers asked for and run on CPU."""
    import onnxruntime as ort

    asked = []
    real = ort.InferenceSession

    def session(path, opts=None, providers=None, **kw):
        asked.append(providers)
        return real(path, opts, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)
    return asked


def test_onnx_teacher_and_evaluator_run_on_the_rank_gpu(tiny_onnx, cuda_onnxruntime):
    from insightface_g2d.embedders.factory import build_embedder, build_teacher

    teacher = build_teacher({"onnx": tiny_onnx}, device="cuda:3")
    assert cuda_onnxruntime[-1] == [("CUDAExecutionProvider", {"device_id": 3}), "CPUExecutionProvider"]
    teacher.to("cuda:1")  # another GPU is another session
    assert cuda_onnxruntime[-1][0] == ("CUDAExecutionProvider", {"device_id": 1})
    build_embedder(tiny_onnx, device="cuda:2")
    assert cuda_onnxruntime[-1][0] == ("CUDAExecutionProvider", {"device_id": 2})
    build_embedder(tiny_onnx, device="cpu")
    assert cuda_onnxruntime[-1] == ["CPUExecutionProvider"]


def test_onnx_teacher_on_a_gpu_without_cuda_onnxruntime_warns(tiny_onnx, monkeypatch):
    import onnxruntime as ort

    from insightface_g2d.embedders.onnx_model import OnnxEmbedder

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])  # the pinned CPU build

    with pytest.warns(UserWarning, match="runs on the CPU: this onnxruntime has no CUDAExecutionProvider"):
        OnnxEmbedder(tiny_onnx, device="cuda:0")


# ---------------------------------------------------------------- float32 losses under autocast

def near_pairs(n=24, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    x[1::2] = x[0::2] + 3e-3 * torch.randn(n // 2, d, generator=g)  # near pairs: half precision loses their angles
    return x, torch.randn(n, 16, generator=g)


def test_relational_losses_under_cpu_bf16_autocast_equal_fp32():
    """Tolerance: 1e-6 relative (float32 rounding). When autocast computed the Gram matrix of the
    triplet angles in bfloat16, these angles were off by 8.7e-3 on average and up to 1.0 (near pairs)."""
    from insightface_g2d.losses.registry import distillation_terms
    from insightface_g2d.losses.relational import triplet_angles

    weights = {"rd1": 0.0, "rd2": 1.0, "rd3": 1.0}

    def total(terms):
        return terms["rd2"] + terms["rd3"]

    student, teacher = near_pairs()
    ref_terms = distillation_terms(student, teacher, weights)
    ref_angles = triplet_angles(F.normalize(student))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = distillation_terms(student, teacher, weights)
        angles = triplet_angles(F.normalize(student))
        from_bf16 = total(distillation_terms(student.bfloat16(), teacher, weights))
    assert total(terms).dtype == angles.dtype == torch.float32
    torch.testing.assert_close(angles, ref_angles, rtol=1e-6, atol=1e-6)
    for k in ("rd2", "rd3"):
        torch.testing.assert_close(terms[k], ref_terms[k], rtol=1e-6, atol=1e-7)
    # half-precision inputs are promoted: the loss of the rounded embeddings, in float32
    expected = total(distillation_terms(student.bfloat16().float(), teacher, weights))
    torch.testing.assert_close(from_bf16, expected, rtol=1e-6, atol=1e-7)


def test_margin_head_under_cpu_bf16_autocast_equals_fp32():
    from insightface_g2d.losses import MarginHead

    torch.manual_seed(0)
    head = MarginHead(16, 10, margin_list=(1.0, 0.5, 0.0), scale=64.0)
    emb, labels = torch.randn(12, 16), torch.randint(0, 10, (12,))
    labels[3] = -1
    ref_loss, ref_logits = head(emb, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits = head(emb, labels)
    assert logits.dtype == loss.dtype == torch.float32
    torch.testing.assert_close(logits, ref_logits, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- the trainer decides precision; clipping and loss scaling

class FakeStage:
    """The least a StageTrainer needs: one module "net", SGD, a step given as a function."""

    kind = "fake"
    primary_group = "main"  # the group logged as `lr`

    def __init__(self, step, **spec):
        self.name = "fake"
        settings = dict(train=["net"], gradient_acc=1, fp16=False, amp_dtype="float16", grad_clip=None,
                        lr_power=1.0, lr=1.0)
        settings.update(spec)
        self.spec = edict(settings)
        self._step = step

    def optimizer_groups(self):
        return {"main": ["net"]}

    def optimizer_settings(self, group):
        return dict(optimizer="sgd", lr=self.spec.lr, momentum=0.0, weight_decay=0.0)

    def step(self, batch, ctx):
        terms = self._step(ctx.module("net"), batch)
        ctx.update("main", terms)
        return terms


def trainer_for(net, stage, rt=None, precision=None, grad_teacher=None):
    from insightface_g2d.training.loop import StageTrainer
    from insightface_g2d.training.models import ModelSet

    models = ModelSet()
    models.add("net", net)
    extra = {} if precision is None else {"precision": precision}
    return StageTrainer(stage, models, rt or Runtime(torch.device("cpu")), total_steps=1000,
                        grad_teacher=grad_teacher, **extra)


def test_precision_is_resolved_once_by_the_trainer():
    from insightface_g2d.training.precision import resolve_precision

    assert not resolve_precision(True, "float16", "cpu").enabled  # CPUs ignore fp16, as arcface_torch
    fp16 = resolve_precision(True, "float16", "cuda:0")
    assert (fp16.dtype, fp16.scaled) == (torch.float16, True)
    bf16 = resolve_precision(True, "bfloat16", "cuda:0", bf16_supported=True)
    assert (bf16.dtype, bf16.scaled) == (torch.bfloat16, False)  # no loss scaling needed
    with pytest.raises(ConfigError, match="does not support bfloat16"):
        resolve_precision(True, "bfloat16", "cuda:0", bf16_supported=False)
    assert not resolve_precision(False, "bfloat16", "cuda:0").enabled


def test_amp_dtype_is_a_checked_config_key():
    from insightface_g2d.training.config import load_config, packaged_base_path

    cfg = load_config(packaged_base_path(), ["amp_dtype='bfloat16'"])
    assert {s["amp_dtype"] for s in cfg.stages} == {"bfloat16"}
    with pytest.raises(ConfigError, match="amp_dtype must be 'float16' or 'bfloat16', got 'float32'"):
        load_config(packaged_base_path(), ["amp_dtype='float32'"])


def test_networks_of_an_fp16_config_do_not_autocast_on_their_own(tmp_path):
    """Precision is the trainer's alone: the stage kinds build their networks (also those a
    `stage=` teacher copies and the end-of-run evaluation embeds with) without arcface_torch's
    autocast in forward, before any trainer exists."""
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import build_models
    from insightface_g2d.training.stages import build_stage

    from training_tools import write_job

    cfg = load_config(write_job(tmp_path, extra="config.fp16 = True\n"))
    assert all(s["fp16"] for s in cfg.stages)
    models = build_models([build_stage(s, cfg) for s in cfg.stages], 4, seed=0)
    assert {"base", "backbone"} <= set(models.modules)
    assert not any(getattr(m, "fp16", False) for module in models.modules.values() for m in module.modules())


def test_a_differentiable_teacher_built_with_fp16_does_not_autocast_under_the_trainer():
    from insightface_g2d import get_model

    teacher = get_model("g2d_t", fp16=True, num_features=8)  # a user's spec may set fp16
    trainer_for(nn.Linear(4, 1), FakeStage(lambda m, b: {"loss": m(b).sum()}, fp16=False),
                grad_teacher=edict(model=teacher))
    assert not any(getattr(m, "fp16", False) for m in teacher.modules())


def test_gradient_clipping_applies_on_cpu_too():
    net = nn.Linear(16, 1, bias=False)
    before = net.weight.detach().clone()
    tr = trainer_for(net, FakeStage(lambda m, b: {"loss": 100.0 * m(b).sum()}, grad_clip=0.5))
    tr.train_step(torch.ones(4, 16))
    moved = (net.weight.detach() - before).norm()  # SGD lr 1: the update is the clipped gradient
    assert abs(float(moved) - 0.5) < 1e-5


class _Overflow(torch.autograd.Function):
    """Identity forward; infinite gradient backward: an fp16 step that always overflows."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def test_a_run_that_overflows_every_step_stops_and_the_loss_scale_is_logged():
    from insightface_g2d.training.loop import step_line, step_scalars
    from insightface_g2d.training.precision import Precision
    from insightface_g2d.training.step_checks import MAX_OVERFLOW_STEPS

    net = nn.Linear(16, 1, bias=False)
    before = net.weight.detach().clone()
    tr = trainer_for(net, FakeStage(lambda m, b: {"loss": _Overflow.apply(m(b)).sum()}),
                     precision=Precision("cpu", torch.float16))  # CPU float16 autocast + GradScaler("cpu")
    for _ in range(MAX_OVERFLOW_STEPS - 1):
        tr.train_step(torch.ones(4, 16))
    assert torch.equal(net.weight.detach(), before)  # every step skipped by the scaler
    assert tr.scaler.get_scale() < 2.0 ** 16
    logs, logged = step_scalars(tr, {"loss": torch.tensor(1.0)}, 1.0)
    assert logged["loss_scale"] == tr.scaler.get_scale() and logged["overflow_steps"] == MAX_OVERFLOW_STEPS - 1
    line = step_line("s", tr.global_step, 1000, 0, logs, logged, 1.0)
    assert f"loss scale {tr.scaler.get_scale():g} ({MAX_OVERFLOW_STEPS - 1} skipped)" in line
    with pytest.raises(TrainingError, match=f"the last {MAX_OVERFLOW_STEPS} optimizer steps all overflowed"):
        tr.train_step(torch.ones(4, 16))


# ---------------------------------------------------------------- DDP: no_sync, one all-reduce per step

def _accumulation_worker(rank, world_size, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        net = nn.Linear(4, 1, bias=False)
        rt = Runtime(torch.device("cpu"), rank, rank, world_size)
        tr = trainer_for(net, FakeStage(lambda m, b: {"loss": m(b).sum()}, gradient_acc=2, lr=0.1), rt)
        calls = []
        real = dist.all_reduce
        dist.all_reduce = lambda *a, **k: calls.append(1) or real(*a, **k)
        x = torch.full((2, 4), float(rank + 1))  # different data on each rank
        tr.train_step(x)  # first micro-batch of the window: no gradient all-reduce
        grad_after_first = net.weight.grad.detach().clone()
        tr.train_step(x)  # last micro-batch: gradients all-reduced, one optimizer step
        dist.all_reduce = real
        grads = [torch.zeros_like(grad_after_first) for _ in range(world_size)]
        dist.all_gather(grads, grad_after_first)
        weights = [torch.zeros_like(net.weight) for _ in range(world_size)]
        dist.all_gather(weights, net.weight.detach().contiguous())
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"flag_all_reduces": len(calls), "first_grads": [g.tolist() for g in grads],
                           "weights_equal": all(torch.equal(w, weights[0]) for w in weights)}, f)
        dist.barrier()  # neither rank tears gloo down while the other still uses it (that aborts the process)
        del tr, net  # the DDP reducer goes before its process group, not at interpreter exit after it
        gc.collect()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_accumulation_uses_no_sync_and_one_flag_all_reduce_per_optimizer_step(tmp_path):
    out = str(tmp_path / "result.json")
    mp.spawn(_accumulation_worker, args=(2, free_port(), out), nprocs=2, join=True)
    with open(out) as f:
        res = json.load(f)
    first = res["first_grads"]
    assert first[0] != first[1]  # each rank kept its own gradient inside the window
    assert first[0] == [[1.0] * 4] and first[1] == [[2.0] * 4]  # sum of 2 rows of (rank + 1) / gradient_acc
    assert res["weights_equal"]  # and the window's step was the same on both ranks
    assert res["flag_all_reduces"] == 1  # numeric guard + stop request: one all-reduce for the step


# ---------------------------------------------------------------- on a GPU (skipped without one)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_cuda_multi_stage_run_with_amp_logs_the_loss_scale(tmp_path, amp_dtype):
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training

    from training_tools import write_job

    if amp_dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    cfg = load_config(write_job(tmp_path, extra=f"config.fp16 = True\nconfig.amp_dtype = {amp_dtype!r}\n"))
    summary = run_training(cfg, output=str(tmp_path / "run"), device="cuda")
    assert summary["status"] == "finished"
    scalars = (tmp_path / "run" / "scalars.csv").read_text()
    assert ("loss_scale" in scalars) == (amp_dtype == "float16")


@needs_cuda
@pytest.mark.parametrize("fp16", [False, True])
def test_cuda_step_syncs_once_plus_the_grad_scaler(fp16):
    """torch's own sync detector: one sync per optimizer step (the guard), plus GradScaler.step's
    found-inf check per optimizer under float16."""
    import warnings

    from insightface_g2d.training.precision import resolve_precision

    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)).cuda()
    stage = FakeStage(lambda m, b: {"loss": m(b).pow(2).mean()}, grad_clip=5.0)
    tr = trainer_for(net, stage, Runtime(torch.device("cuda", torch.cuda.current_device())),
                     precision=resolve_precision(fp16, "float16", "cuda"))
    x = torch.randn(8, 16, device="cuda")
    tr.train_step(x)  # warm-up (lazy optimizer state)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tr.train_step(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 1 + int(fp16), [str(w.message) for w in syncs]

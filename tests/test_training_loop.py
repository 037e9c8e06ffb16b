"""The generic loop on CPU: every stage kind, freezing, outputs, resume equality, stop, skip."""
import csv
import os
import signal

import pytest
import torch

from insightface_g2d import get_model
from insightface_g2d.training.config import load_config
from insightface_g2d.training.runner import run_training

from training_tools import assert_states_equal, load, module_states, one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)

ALL_STAGES = """[
    dict(name="base", kind="arcface", network="g2d_t", steps=2, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="inpaint", steps=2, batch_size=4, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8)),
    dict(name="reform", steps=2),
    dict(name="classify", steps=2),
    dict(name="finetune", steps=2, lr=0.01, margin_list=(1.0, 0.0, 0.35), scale=16.0),
]"""


def _changed(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a)


def _prefixed(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_every_stage_trains_only_its_modules(tmp_path):
    cfg = load_config(write_job(tmp_path, ALL_STAGES))
    out = tmp_path / "run"
    first = run_training(cfg, output=str(out), stage="base")
    assert first["status"] == "partial" and first["finished_stages"] == ["base"]
    assert sorted(p.name for p in out.glob("stage_*.pt")) == ["stage_base.pt"]
    base_mtime = os.path.getmtime(out / "stage_base.pt")

    summary = run_training(cfg, output=str(out))
    assert summary["status"] == "finished"
    assert os.path.getmtime(out / "stage_base.pt") == base_mtime  # finished stage skipped, not retrained
    s = {n: module_states(out / f"stage_{n}.pt") for n in ("base", "inpaint", "reform", "classify", "finetune")}

    # inpaint: encoder, decoder, discriminator change; the reformer does not
    enc = lambda st: _prefixed(st["backbone"], "encoder.")  # noqa: E731
    red = lambda st: _prefixed(st["backbone"], "reformer.")  # noqa: E731
    assert _changed(enc(s["base"]), enc(s["inpaint"]))
    assert not _changed(red(s["base"]), red(s["inpaint"]))
    assert _changed(s["base"]["decoder"], s["inpaint"]["decoder"])
    assert _changed(s["base"]["discriminator"], s["inpaint"]["discriminator"])
    # reform: reformer changes, encoder (incl. BatchNorm statistics) is frozen
    assert _changed(red(s["inpaint"]), red(s["reform"]))
    assert not _changed(enc(s["inpaint"]), enc(s["reform"]))
    # classify: only the head
    assert not _changed(s["reform"]["backbone"], s["classify"]["backbone"])
    assert _changed(s["reform"]["head"], s["classify"]["head"])
    # finetune: backbone and margin head; the baseline network is never touched after its stage
    assert _changed(s["classify"]["backbone"], s["finetune"]["backbone"])
    assert _changed(s["classify"]["margin_head"], s["finetune"]["margin_head"])
    assert not _changed(s["base"]["base"], s["finetune"]["base"])
    # IResNet-style fixed BN weight of the embedding stays 1
    assert torch.equal(s["finetune"]["backbone"]["reformer.features.weight"], torch.ones(32))

    # model.pt: plain state dict of the final backbone, strict-loadable by get_model
    model = get_model("g2d_t", num_features=32)
    model.load_state_dict(load(out / "model.pt"), strict=True)
    assert_states_equal({"m": model.state_dict()}, {"m": s["finetune"]["backbone"]})
    baseline = get_model("g2d_t", num_features=32)
    baseline.load_state_dict(load(out / "base_model.pt"), strict=True)
    assert not (out / "checkpoint_gpu_0.pt").exists()  # superseded by the stage files
    assert (out / "previews" / "inpaint_final.png").stat().st_size > 1000

    with open(out / "scalars.csv") as f:
        rows = list(csv.DictReader(f))
    names = {(r["stage"], r["name"]) for r in rows}
    for needed in [("inpaint", "l1"), ("inpaint", "identity"), ("inpaint", "d_hinge"), ("reform", "rd3"),
                   ("classify", "acc_masked"), ("base", "margin"), ("inpaint", "lr_discriminator")]:
        assert needed in names
    assert all(float(r["value"]) == float(r["value"]) for r in rows)  # no NaN logged


RESUME_STAGES = """[
    dict(name="base", kind="arcface", network="g2d_t", steps=2, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="inpaint", steps=3, batch_size=4, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8)),
    dict(name="reform", steps=6, warmup_steps=2),
]"""


def test_resume_after_signals_equals_uninterrupted_run(tmp_path):
    # whatever handlers the test process has (Python's default_int_handler, or SIG_IGN when pytest
    # was started with SIGINT ignored: a background job, nohup, some CI runners) come back after a run
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    cfg = load_config(write_job(tmp_path, RESUME_STAGES))
    straight = run_training(cfg, output=str(tmp_path / "a"))
    assert straight["status"] == "finished"

    def stopper(stage, step, sig):
        def on_step(run, s):
            if run.stage.name == stage and s == step:
                os.kill(os.getpid(), sig)  # the real handler: finish the step, save, stop
        return on_step

    out = str(tmp_path / "b")
    r1 = run_training(cfg, output=out, on_step=stopper("inpaint", 2, signal.SIGINT))
    assert r1["status"] == "stopped"
    ckpt = load(os.path.join(out, "checkpoint_gpu_0.pt"))
    assert (ckpt["stage"], ckpt["global_step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == ("inpaint", 2, 0, 2)
    # reform crosses an epoch (4 batches of 8 per epoch); stop mid-way through the second one
    r2 = run_training(cfg, output=out, on_step=stopper("reform", 5, signal.SIGTERM))
    assert r2["status"] == "stopped" and r2["finished_stages"] == ["base", "inpaint"]
    ckpt = load(os.path.join(out, "checkpoint_gpu_0.pt"))
    assert (ckpt["stage"], ckpt["global_step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == ("reform", 5, 1, 1)
    r3 = run_training(cfg, output=out)
    assert r3["status"] == "finished"
    for name in ("base", "inpaint", "reform"):
        assert_states_equal(module_states(tmp_path / "a" / f"stage_{name}.pt"),
                            module_states(os.path.join(out, f"stage_{name}.pt")))
    assert torch.equal(load(tmp_path / "a" / "model.pt")["reformer.fc.weight"],
                       load(os.path.join(out, "model.pt"))["reformer.fc.weight"])
    # signal handlers are restored after the run
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_resume_never_and_explicit_checkpoint(tmp_path):
    stages = """[dict(name="base", kind="arcface", network="g2d_t", steps=3, optimizer="adamw", lr=1e-3)]"""
    cfg = load_config(write_job(tmp_path, stages))
    out = str(tmp_path / "run")

    def stop_at_1(run, s):
        run.stop.request()

    assert run_training(cfg, output=out, on_step=stop_at_1)["status"] == "stopped"
    saved = os.path.join(out, "keep.pt")
    os.replace(os.path.join(out, "checkpoint_gpu_0.pt"), saved)
    logs = []
    done = run_training(cfg, output=out, resume=saved, on_step=lambda run, s: logs.append(s))
    assert done["status"] == "finished" and logs == [2, 3]  # continued after step 1
    assert f"resumed from {saved} at step 1/3" in open(os.path.join(out, "training.log")).read()
    os.unlink(os.path.join(out, "stage_base.pt"))
    logs.clear()
    run_training(cfg, output=out, resume="never", on_step=lambda run, s: logs.append(s))
    assert logs == [1, 2, 3]
    # a finished stage is skipped even when its settings changed, with a warning that says so
    changed = load_config(tmp_path / "tiny.py", ["stages.base.lr=0.5"])
    assert run_training(changed, output=out, on_step=lambda run, s: logs.append(s))["status"] == "finished"
    assert logs == [1, 2, 3]
    log = open(os.path.join(out, "training.log")).read()
    assert "stage base was finished with other settings (lr)" in log


def test_reform_from_a_teacher_cache_matches_the_live_teacher(tmp_path):
    from insightface_g2d.data.factory import build_face_dataset
    from insightface_g2d.embedders.torch_network import TorchEmbedder
    from insightface_g2d.teachers import build_teacher_cache

    torch.manual_seed(0)
    teacher_path = tmp_path / "teacher.pth"
    torch.save(get_model("g2d_t", num_features=32).state_dict(), teacher_path)
    rec = "synthetic:ids=4,per_id=8,seed=3"
    cache = tmp_path / "cache"
    build_teacher_cache(TorchEmbedder.from_checkpoint("g2d_t", str(teacher_path), channels_last=False), build_face_dataset(rec), str(cache),
                        dtype="float32", progress=False)
    stages = '[dict(name="reform", steps=3, batch_size=16, optimizer="sgd", lr=0.5)]'
    teacher = f"config.teacher = dict(network='g2d_t', checkpoint={str(teacher_path)!r})\n"
    live = load_config(write_job(tmp_path, stages, teacher))
    cached = load_config(write_job(tmp_path, stages, f"config.teacher = dict(cache={str(cache)!r})\n", name="c.py"))
    run_training(live, output=str(tmp_path / "live"))
    run_training(cached, output=str(tmp_path / "cached"))
    a = module_states(tmp_path / "live" / "stage_reform.pt")["backbone"]
    b = module_states(tmp_path / "cached" / "stage_reform.pt")["backbone"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-4), k


def test_resume_removes_stale_temporary_checkpoints(tmp_path, monkeypatch):
    """A process SIGKILLed inside atomic_save leaves `.<file>.<random>.tmp`; the next
    run deletes this rank's leftovers (logging it) and resumes exactly, touching nothing else."""
    from insightface_g2d.training import checkpoint as ckpt_mod

    stages = """[dict(name="base", kind="arcface", network="g2d_t", steps=3, optimizer="adamw", lr=1e-3)]"""
    cfg = load_config(write_job(tmp_path, stages))
    out = tmp_path / "run"
    assert run_training(cfg, output=str(out), on_step=lambda run, s: run.stop.request())["status"] == "stopped"

    # a write killed before its rename (no cleanup runs): the file name a SIGKILL leaves behind
    class Killed(BaseException):
        pass

    def killed_replace(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(ckpt_mod.os, "replace", killed_replace)
        m.setattr(ckpt_mod.os, "unlink", lambda *args, **kwargs: None)
        with pytest.raises(Killed):
            ckpt_mod.atomic_save({"junk": torch.zeros(1000)}, out / "checkpoint_gpu_0.pt")
    killed = [p.name for p in out.iterdir() if p.name.startswith(".checkpoint_gpu_0.pt.")]
    assert len(killed) == 1 and killed[0].endswith(".tmp")
    stale = killed + [".stage_base.pt.k2j4h6g8.tmp", ".model.pt.abcdefgh.tmp", ".base_model.pt.x_y_z123.tmp",
                      ".checkpoint_gpu_3.pt.qwertyui.tmp",  # rank 3 of an earlier, larger run
                      ".config.json.abcdefgh.tmp"]  # config.json is written atomically too
    keep = ["notes.tmp", ".notes.json.abcdefgh.tmp", "my.pt", ".checkpoint_gpu_0.pt.tmp.bak"]
    for name in stale[1:] + keep:
        (out / name).write_bytes(b"x" * 10)

    steps = []
    done = run_training(cfg, output=str(out), on_step=lambda run, s: steps.append(s))
    assert done["status"] == "finished" and steps == [2, 3]  # resumed after step 1
    left = sorted(p.name for p in out.iterdir())
    assert not set(stale) & set(left) and set(keep) <= set(left)
    log = (out / "training.log").read_text()
    assert "removed 6 temporary checkpoint file(s)" in log and killed[0] in log


def test_stale_temporary_files_are_cleaned_by_the_rank_that_writes_them():
    from insightface_g2d.training.checkpoint import temp_target
    from insightface_g2d.training.runner import owns_temp_target

    assert temp_target(".checkpoint_gpu_1.pt.a1b2c3d4.tmp") == "checkpoint_gpu_1.pt"
    assert temp_target(".stage_re.form.pt.zz_zz_zz.tmp") == "stage_re.form.pt"
    for name in ("checkpoint_gpu_1.pt", "x.tmp", ".x.tmp", "..tmp", ".checkpoint_gpu_1.pt.a1b2-c3d4.tmp"):
        assert temp_target(name) is None, name
    # world size 2: each rank its own step checkpoint; rank 0 also the files only it writes and
    # the step checkpoints of ranks beyond the world (a resume with fewer processes)
    owned = {rank: [t for t in ("checkpoint_gpu_0.pt", "checkpoint_gpu_1.pt", "checkpoint_gpu_2.pt",
                                "stage_reform.pt", "model.pt", "base_model.pt", "config.json")
                    if owns_temp_target(t, rank, 2)] for rank in (0, 1)}
    assert owned == {0: ["checkpoint_gpu_0.pt", "checkpoint_gpu_2.pt", "stage_reform.pt", "model.pt",
                         "base_model.pt", "config.json"],
                     1: ["checkpoint_gpu_1.pt"]}

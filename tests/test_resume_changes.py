"""Resuming a stage whose settings changed: refused with the list of differences, or applied on
request (--apply-changes) into the restored optimizer and schedule; the NaN guard's advice, followed
as printed, recovers."""
import dataclasses
import shlex

import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.train import main, resume_command
from insightface_g2d.errors import CheckpointError, TrainingError
from insightface_g2d.training.config import load_config
from insightface_g2d.training.kinds import STAGE_KINDS
from insightface_g2d.training.runner import run_training

from training_tools import load, one_thread, write_job
from trust_tools import QuadSettings, QuadStage, expected_w, quad_kind  # noqa: F401  (the fixture registering the quad stage kind)

_threads = pytest.fixture(autouse=True)(one_thread)
pytestmark = pytest.mark.usefixtures("quad_kind")

QUAD = '[dict(name="q", kind="quad", steps=40, lr=3.0, batch_size=8)]'
EVERY_10 = "config.checkpoint_every = 10\nconfig.frequent = 1000\n"


def test_nan_advice_followed_as_printed_recovers(tmp_path, capsys):
    job = write_job(tmp_path, QUAD, EVERY_10)
    out = tmp_path / "run"
    argv = [str(job), "--output", str(out), "--device", "cpu", "--no-eval"]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "non-finite loss term(s) at step 29: sq=inf" in err and "checkpoint_gpu_0.pt is intact" in err
    advice = err.split("To resume with a lower learning rate: ", 1)[1]
    words = shlex.split(advice)
    assert words[0] == "g2d-train" and words[-3:] == ["--set", "stages.q.lr=0.3", "--apply-changes"]
    assert "--no-eval" in words
    assert run_cli(main, words[1:]) == 0  # exactly what the message said to run
    log = capsys.readouterr().err
    assert "resumed from" in log and "at step 20/40" in log and "lr 3.0 -> 0.3" in log
    final = load(out / "stage_q.pt")
    # 20 steps at lr 3 (before the checkpoint), then 20 at the new lr 0.3
    want = expected_w([3.0] * 20 + [0.3] * 20)
    assert torch.allclose(final["modules"]["quad"]["weight"], want, rtol=1e-5)
    assert float(want) == pytest.approx(5.0 ** 20 * 0.4 ** 20, rel=1e-4)
    trainer = final["trainer"]
    assert trainer["optimizers"]["main"]["param_groups"][0]["lr"] == pytest.approx(0.3)
    assert trainer["schedulers"]["main"]["base_lrs"] == [pytest.approx(0.3)]


def _stopped_at(tmp_path, step, stages, extra="", name="tiny.py"):
    cfg = load_config(write_job(tmp_path, stages, extra, name=name))
    out = tmp_path / "run"

    def stop(run, s):
        if s == step:
            run.stop.request()

    assert run_training(cfg, output=str(out), on_step=stop)["status"] == "stopped"
    return out


def test_changed_settings_are_refused_listing_them(tmp_path):
    out = _stopped_at(tmp_path, 3, '[dict(name="q", kind="quad", steps=6, lr=0.1)]')
    job = tmp_path / "tiny.py"
    with pytest.raises(CheckpointError) as err:
        run_training(load_config(job, ["stages.q.lr=0.05"]), output=str(out))
    msg = str(err.value)
    assert "the config changed since" in msg and "lr 0.1 -> 0.05" in msg and "--apply-changes" in msg
    with pytest.raises(CheckpointError) as err:  # a structural change is refused even when asked to apply
        run_training(load_config(job, ["stages.q.lr=0.05", "stages.q.batch_size=4"]), output=str(out),
                     apply_changes=True)
    assert "batch_size 8 -> 4" in str(err.value) and "cannot change in the middle of a stage" in str(err.value)
    # harmless keys resume as before, exactly
    done = run_training(load_config(job, ["stages.q.checkpoint_every=2", "preview_every=7"]), output=str(out))
    assert done["status"] == "finished"
    assert torch.equal(load(out / "stage_q.pt")["modules"]["quad"]["weight"], expected_w([0.1] * 6))


def test_a_changed_seed_is_refused_like_any_structural_change(tmp_path):
    out = _stopped_at(tmp_path, 3, '[dict(name="q", kind="quad", steps=6, lr=0.1)]')
    assert load(out / "checkpoint_gpu_0.pt")["seed"] == 7
    job = tmp_path / "tiny.py"
    for apply_changes in (False, True):
        with pytest.raises(CheckpointError) as err:
            run_training(load_config(job, ["seed=8", "stages.q.lr=0.05"]), output=str(out), apply_changes=apply_changes)
        msg = str(err.value)
        assert "lr 0.1 -> 0.05, seed 7 -> 8" in msg and "seed cannot change in the middle of a stage" in msg
    assert load(out / "checkpoint_gpu_0.pt")["global_step"] == 3  # nothing trained
    assert run_training(load_config(job), output=str(out))["status"] == "finished"


def test_a_refused_resume_leaves_config_json_as_it_was(tmp_path):
    out = _stopped_at(tmp_path, 3, '[dict(name="q", kind="quad", steps=6, lr=0.1)]')
    before = (out / "config.json").read_bytes()
    job = tmp_path / "tiny.py"
    for change in (["stages.q.lr=0.05"], ["stages.q.batch_size=4"], ["seed=9"]):
        with pytest.raises(CheckpointError):
            run_training(load_config(job, change), output=str(out))
        assert (out / "config.json").read_bytes() == before
    # an accepted resume writes the config it continues with
    run_training(load_config(job, ["stages.q.lr=0.05"]), output=str(out), apply_changes=True)
    assert (out / "config.json").read_bytes() != before and b'"lr": 0.05' in (out / "config.json").read_bytes()


def test_applied_lr_lands_in_the_optimizer_and_the_schedule(tmp_path):
    stages = '[dict(name="q", kind="quad", steps=6, lr=0.1, lr_power=1.0)]'
    out = _stopped_at(tmp_path, 2, stages)
    cfg = load_config(tmp_path / "tiny.py", ["stages.q.lr=0.2"])
    lrs = []
    run_training(cfg, output=str(out), apply_changes=True,
                 on_step=lambda run, s: lrs.append(run.trainer.optimizers["main"].param_groups[0]["lr"]))
    # linear decay over 6 steps: the factor after step s is 1 - s/6; the base is now 0.2
    assert lrs == pytest.approx([0.2 * (1 - s / 6) for s in range(3, 7)])
    before = [0.1 * (1 - s / 6) for s in range(2)]
    after = [0.2 * (1 - s / 6) for s in range(2, 6)]
    assert torch.allclose(load(out / "stage_q.pt")["modules"]["quad"]["weight"], expected_w(before + after),
                          rtol=1e-6)


class QuadPairStage(QuadStage):
    """quad, plus a second one-weight module `quad2` trained by the same optimizer (for lr_mult)."""
    kind = "quad_pair"
    trainable = ("quad", "quad2")
    allowed_train = ("quad", "quad2")

    def module_factories(self, num_classes):
        build = super().module_factories(num_classes)["quad"]
        return {"quad": build, "quad2": build}

    def step(self, batch, ctx):
        terms = {"sq": ctx.raw("quad").weight.pow(2).sum() + ctx.raw("quad2").weight.pow(2).sum()}
        ctx.update("main", terms, self.spec.losses)
        return terms


def test_applied_lr_keeps_the_lr_mult_ratio_of_the_param_groups(tmp_path, monkeypatch):
    monkeypatch.setitem(STAGE_KINDS, QuadPairStage.kind, QuadPairStage)
    stages = '[dict(name="q", kind="quad_pair", steps=6, lr=0.1, lr_power=1.0, lr_mult=dict(quad2=0.25))]'
    out = _stopped_at(tmp_path, 2, stages)
    cfg = load_config(tmp_path / "tiny.py", ["stages.q.lr=0.2"])
    lrs = []
    run_training(cfg, output=str(out), apply_changes=True,
                 on_step=lambda run, s: lrs.append([g["lr"] for g in run.trainer.optimizers["main"].param_groups]))
    # after step s the factor is 1 - s/6; quad2 keeps its factor 0.25 of the new base 0.2
    assert lrs == [pytest.approx([0.2 * (1 - s / 6), 0.05 * (1 - s / 6)]) for s in range(3, 7)]
    final = load(out / "stage_q.pt")
    assert final["trainer"]["schedulers"]["main"]["base_lrs"] == [pytest.approx(0.2), pytest.approx(0.05)]
    before = [0.1 * (1 - s / 6) for s in range(2)]
    after = [0.2 * (1 - s / 6) for s in range(2, 6)]
    assert torch.allclose(final["modules"]["quad"]["weight"], expected_w(before + after), rtol=1e-6)
    assert torch.allclose(final["modules"]["quad2"]["weight"], expected_w([lr * 0.25 for lr in before + after]),
                          rtol=1e-6)


def test_resume_command_keeps_the_flags_and_drops_resume():
    argv = ["c.py", "--output", "out dir", "--no-eval", "--resume", "keep.pt", "--set", "lr=0.1", "--resume=never"]
    assert resume_command(argv) == "g2d-train c.py --output 'out dir' --no-eval --set lr=0.1"


def test_stop_message_repeats_the_command_that_was_run(tmp_path):
    cfg = load_config(write_job(tmp_path, '[dict(name="q", kind="quad", steps=4)]'))
    out = tmp_path / "run"
    command = f"g2d-train {tmp_path / 'tiny.py'} --output {out} --no-eval --threads 1"
    run_training(cfg, output=str(out), command=command, on_step=lambda run, s: run.stop.request())
    assert f"Resume with the same command: {command}" in (out / "training.log").read_text()


def test_nan_without_a_checkpoint_still_advises_a_working_command(tmp_path, capsys):
    job = write_job(tmp_path, QUAD, "config.checkpoint_every = 1000\n")
    argv = [str(job), "--output", str(tmp_path / "run"), "--device", "cpu"]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no checkpoint of this stage was written yet" in err
    assert run_cli(main, shlex.split(err.split("lower learning rate: ", 1)[1])[1:]) == 0
    final = load(tmp_path / "run" / "stage_q.pt")["modules"]["quad"]["weight"]
    assert torch.allclose(final, expected_w([0.3] * 40), rtol=1e-5)
    with pytest.raises(TrainingError):  # control: the old rate really diverges
        run_training(load_config(job), output=str(tmp_path / "again"))


@dataclasses.dataclass(frozen=True)
class GainQuadSettings(QuadSettings):
    gain: float = 1.0  # the loss is gain * w**2: declared applicable on resume


class GainQuadStage(QuadStage):
    kind = "gain_quad"
    settings = GainQuadSettings
    resume_applicable = ("gain",)

    def step(self, batch, ctx):
        w = ctx.raw("quad").weight
        terms = {"sq": self.spec.gain * w.pow(2).sum()}
        ctx.update("main", terms, self.spec.losses)
        return terms


def test_a_key_the_kind_declares_applicable_is_applied_and_an_undeclared_one_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(STAGE_KINDS, GainQuadStage.kind, GainQuadStage)
    stages = '[dict(name="q", kind="gain_quad", steps=6, lr=0.1)]'
    out = _stopped_at(tmp_path, 2, stages)
    job = tmp_path / "tiny.py"
    with pytest.raises(CheckpointError, match="gain 1.0 -> 2.0.*--apply-changes"):  # applicable, not asked
        run_training(load_config(job, ["stages.q.gain=2.0"]), output=str(out))
    with pytest.raises(CheckpointError) as err:  # poison_at: a key of the kind it does not declare
        run_training(load_config(job, ["stages.q.poison_at=100", "stages.q.gain=2.0"]), output=str(out),
                     apply_changes=True)
    msg = str(err.value)
    assert "poison_at None -> 100" in msg and "poison_at cannot change in the middle of a stage" in msg
    assert "applies only lr, momentum, weight_decay, betas, losses, grad_clip, masks, teacher, gain)" in msg
    assert run_training(load_config(job, ["stages.q.gain=2.0"]), output=str(out), apply_changes=True)["status"] \
        == "finished"
    # 2 steps of w <- w - lr * 2w, then 4 of w <- w - lr * 2 * (2w): the new gain from step 3 on
    want = expected_w([0.1] * 2 + [0.2] * 4)
    assert torch.allclose(load(out / "stage_q.pt")["modules"]["quad"]["weight"], want, rtol=1e-6)


def test_a_step_checkpoint_of_another_stage_is_ignored_when_found_and_refused_when_named(tmp_path, capsys):
    stages = '[dict(name="q1", kind="quad", steps=4, lr=0.1), dict(name="q2", kind="quad", steps=2, lr=0.1)]'
    out = _stopped_at(tmp_path, 2, stages)
    step_ckpt = out / "checkpoint_gpu_0.pt"
    assert load(step_ckpt)["stage"] == "q1"
    cfg = load_config(tmp_path / "tiny.py")
    with pytest.raises(CheckpointError, match=r"--resume .*checkpoint_gpu_0.pt belongs to stage 'q1', not 'q2' "
                                              r"\(the next stage to run\)"):
        run_training(cfg, output=str(out), stage="q2", resume=str(step_ckpt))
    capsys.readouterr()
    assert run_training(cfg, output=str(out), stage="q2")["status"] == "partial"
    assert f"ignoring {step_ckpt}: it belongs to stage 'q1'" in capsys.readouterr().err
    assert load(out / "stage_q2.pt")["trainer"]["global_step"] == 2  # q2 started over, from its own start
    assert torch.equal(load(out / "stage_q2.pt")["modules"]["quad"]["weight"], expected_w([0.1] * 2))

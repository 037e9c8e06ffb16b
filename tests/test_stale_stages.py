"""A finished stage is not reused when a stage before it trained again or changed since (its stage
file records the earlier stage files it started from): the run refuses before training, naming the
files to delete and the command; followed as printed, model.pt holds what the stages trained."""
import shlex
import subprocess
from types import SimpleNamespace

import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.train import main

from training_tools import load, module_states, one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)

THREE = """[
    dict(name="base", kind="arcface", network="g2d_t", steps=2, optimizer="adamw", lr=1e-3, scale=16.0),
    dict(name="inpaint", steps=2, batch_size=4, decoder_widths=(16, 8, 8), disc_widths=(8, 8, 8)),
    dict(name="reform", steps=2),
]"""


def named(*names):
    return [SimpleNamespace(name=n) for n in names]


def test_stale_rules():
    from insightface_g2d.training.stage_inputs import stale_stages

    stages = named("a", "b", "c")
    ok = {"a": ("A", {}), "b": ("B", {"a": "A"}), "c": ("C", {"a": "A", "b": "B"})}
    assert stale_stages(stages, ok, []) == []
    # b was trained before a had run; a is finished now: b is stale, and c (trained from b) too
    late = dict(ok, b=("B", {"a": None}))
    assert [n for n, _ in stale_stages(stages, late, [])] == ["b", "c"]
    assert stale_stages(stages, late, []) == [("b", "a had not run when b was trained"),
                                              ("c", "it was trained from b, which is stale")]
    # a trains in this run: every finished stage after it is stale
    assert [n for n, _ in stale_stages(stages, {"b": ok["b"], "c": ok["c"]}, ["a"])] == ["b", "c"]
    # a's file is another one than c was trained from
    other = dict(ok, a=("A2", {}))
    assert stale_stages(stages, other, [])[0] == ("b", "stage_a.pt is not the file b was trained from")
    # an earlier stage file deleted and not retrained: the later stage still holds what it was trained with
    assert stale_stages(stages, {"b": ok["b"], "c": ok["c"]}, []) == []
    # a stage file without a record (older files) is checked only against stages that train now
    legacy = {"a": ("A2", {}), "b": ("B", None)}
    assert stale_stages(stages, legacy, []) == []
    assert stale_stages(stages, {"b": ("B", None)}, ["a"]) == [("b", "a trains again in this run")]


def test_stage_trained_before_its_input_is_not_reused(tmp_path, capsys):
    """The reported case: --stage reform on a fresh folder (inpaint has not run), then the plain command."""
    job = write_job(tmp_path, THREE)
    out = tmp_path / "run"
    argv = [str(job), "--output", str(out), "--device", "cpu", "--no-eval"]
    assert run_cli(main, argv + ["--stage", "base"]) == 0
    assert run_cli(main, argv + ["--stage", "reform"]) == 0
    assert "stage inpaint has not run" in capsys.readouterr().err
    early = module_states(out / "stage_reform.pt")["backbone"]
    assert load(out / "stage_reform.pt").get("inputs") == {"base": load(out / "stage_base.pt")["checksum"],
                                                          "inpaint": None}
    config_before = (out / "config.json").read_bytes()

    assert run_cli(main, argv) == 2  # refused before inpaint trains
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: stage reform (stage_reform.pt) is stale: reform was trained before inpaint had run")
    assert not (out / "stage_inpaint.pt").exists() and not (out / "model.pt").exists()
    assert (out / "config.json").read_bytes() == config_before

    advice = err.split("To train it again: ", 1)[1]
    assert advice == f"rm {shlex.quote(str(out / 'stage_reform.pt'))} && g2d-train {shlex.join(argv)}"
    subprocess.run(shlex.split(advice.split(" && ")[0]), check=True)  # the rm, exactly as printed
    assert run_cli(main, shlex.split(advice.split(" && ")[1])[1:]) == 0  # then the command
    model = load(out / "model.pt")
    inpainted = module_states(out / "stage_inpaint.pt")["backbone"]
    encoder = [k for k in model if k.startswith("encoder.")]
    assert encoder and all(torch.equal(model[k], inpainted[k]) for k in encoder)
    assert not all(torch.equal(model[k], early[k]) for k in encoder)  # not the encoder reform first saw
    assert load(out / "stage_reform.pt")["inputs"] == {"base": load(out / "stage_base.pt")["checksum"],
                                                      "inpaint": load(out / "stage_inpaint.pt")["checksum"]}
    assert run_cli(main, argv) == 0  # everything matches now: skipped and reused
    assert "stage reform: already finished" in capsys.readouterr().err


def test_a_retrained_earlier_stage_makes_the_later_ones_stale(tmp_path, capsys):
    job = write_job(tmp_path, THREE)
    out = tmp_path / "run"
    argv = [str(job), "--output", str(out), "--device", "cpu", "--no-eval"]
    assert run_cli(main, argv) == 0
    (out / "stage_inpaint.pt").unlink()  # to train inpaint again
    assert run_cli(main, argv + ["--stage", "inpaint"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "stage reform (stage_reform.pt) is stale: inpaint trains again in this run" in err
    assert not (out / "stage_inpaint.pt").exists()

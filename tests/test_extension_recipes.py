"""The "add a stage kind" and "add a loss" recipes of docs/architecture.md, done exactly as written:
the module of each recipe is read from the docs, written to a file, imported; its one registry line
is run (the stage kind's with the real register_stage_kind, the loss's as a monkeypatched dict
entry), and undone after the test; then g2d-train trains it."""
import csv
import importlib.util
import re
from pathlib import Path

import pytest
import torch

from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.train import main
from insightface_g2d.losses.registry import DISTILLATION_LOSSES, DistillationLoss
from insightface_g2d.training.kinds import STAGE_KINDS, register_stage_kind

from training_tools import load, module_states, one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BASE = 'dict(name="base", kind="arcface", network="g2d_t", steps=1, optimizer="adamw", lr=1e-3, scale=16.0)'


def recipe_blocks(heading):
    """The python code blocks of the docs section `heading`, in order."""
    text = DOCS.read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def import_file(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(tmp_path, stages, name):
    job = write_job(tmp_path, stages, "config.frequent = 1\n", name=f"{name}.py")
    out = tmp_path / name
    assert run_cli(main, [str(job), "--output", str(out), "--device", "cpu", "--no-eval"]) == 0
    return out


def logged(out, term):
    with open(out / "scalars.csv") as f:
        return [float(r["value"]) for r in csv.DictReader(f) if r["name"] == term]


@pytest.fixture
def stage_kinds_restored():
    """STAGE_KINDS as it was, whatever the test registered."""
    before = dict(STAGE_KINDS)
    yield
    STAGE_KINDS.clear()
    STAGE_KINDS.update(before)


def test_adding_a_stage_kind_as_the_docs_say(tmp_path, stage_kinds_restored):
    module_code, registry_line = recipe_blocks("Add a stage kind")
    assert registry_line.strip() == "register_stage_kind(MseReformStage)"
    path = tmp_path / "mse_reform.py"
    path.write_text(module_code)
    namespace = {"register_stage_kind": register_stage_kind, **vars(import_file(path))}
    exec(registry_line, namespace)  # the registry line itself
    cls = namespace["MseReformStage"]
    assert STAGE_KINDS["mse_reform"] is cls and list(STAGE_KINDS)[-1] == "mse_reform"
    out = train(tmp_path, f'[{BASE}, dict(name="mine", kind="mse_reform", steps=3)]', "run")
    stage = load(out / "stage_mine.pt")
    assert stage["kind"] == "mse_reform" and stage["finished"] and stage["trainer"]["global_step"] == 3
    assert set(stage["trainer"]["optimizers"]) == {"main"}
    # it trained the reformer and left the encoder as it was (stage_base.pt holds the backbone as built)
    before = module_states(out / "stage_base.pt")["backbone"]
    after = module_states(out / "stage_mine.pt")["backbone"]
    changed = {k.split(".")[0] for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"reformer"}
    model = load(out / "model.pt")  # model.pt is that backbone, as for every G2D kind
    assert model.keys() == after.keys() and all(torch.equal(model[k], after[k]) for k in model)
    assert len(logged(out, "mse")) == 3 and all(v >= 0 for v in logged(out, "mse"))


def test_adding_a_loss_as_the_docs_say(tmp_path, monkeypatch):
    module_code, registry_line = recipe_blocks("Add a loss")
    name, entry = re.fullmatch(r'\s*"(\w+)": (DistillationLoss\(cosine_sq, ([0-9.]+)\)),\s*', registry_line).group(1, 2)
    path = tmp_path / "cosine_sq.py"
    path.write_text(module_code)
    cosine_sq = import_file(path).cosine_sq
    calls = []

    def recorded(student, teacher):
        value = cosine_sq(student, teacher)
        calls.append((student.detach().clone(), teacher.detach().clone(), value.detach().clone()))
        return value

    default = DistillationLoss(recorded, 0.0)
    assert entry == "DistillationLoss(cosine_sq, 0.0)"
    monkeypatch.setitem(DISTILLATION_LOSSES, name, default)  # the registry line

    # a reform stage that does not ask for it does not compute it (default weight 0) ...
    plain = train(tmp_path, f'[{BASE}, dict(name="reform", steps=2)]', "plain")
    assert not calls and not logged(plain, name) and len(logged(plain, "rd2")) == 2
    # ... one that weights it trains with it, alone here
    out = train(tmp_path, f'[{BASE}, dict(name="reform", steps=2, losses=dict({name}=1.0, rd1=0.0, rd2=0.0, '
                          'rd3=0.0))]', "with_loss")
    assert len(calls) == 2 and not logged(out, "rd1") and not logged(out, "rd2")
    values = logged(out, name)
    assert len(values) == 2
    for (student, teacher, value), seen in zip(calls, values):
        cos = torch.nn.functional.cosine_similarity(student.double(), teacher.double(), dim=1)
        assert float(value) == pytest.approx(float(((1 - cos) ** 2).mean()), rel=1e-4)
        assert seen == pytest.approx(float(value), rel=1e-3, abs=1e-6)

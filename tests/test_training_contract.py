"""The loop's contract with every stage kind: the modules a stage trains are in train mode (every
submodule) at every step, and nothing but the data and the seed decides the final weights: not
how often previews, log lines or checkpoints are written."""
import pytest

from insightface_g2d.training import stage_kinds
from insightface_g2d.training.config import load_config
from insightface_g2d.training.modes import all_training
from insightface_g2d.training.runner import run_training
from insightface_g2d.training.stages import STAGE_KINDS

from training_tools import assert_states_equal, load, module_states, one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)

BASE = 'dict(name="base", kind="arcface", network="g2d_t", steps={n}, optimizer="adamw", lr=1e-3, scale=16.0)'
CASES = {
    "arcface": [BASE.format(n=3)],
    "inpaint": [BASE.format(n=1), 'dict(name="inpaint", steps=3, batch_size=4, decoder_widths=(16, 8, 8), '
                                  'disc_widths=(8, 8, 8))'],
    "reform": [BASE.format(n=1), 'dict(name="reform", steps=3)'],
    "classify": ['dict(name="classify", steps=3)'],
    "finetune": ['dict(name="finetune", steps=3, lr=0.01, margin_list=(1.0, 0.0, 0.35), scale=16.0)'],
}
BUSY = "config.preview_every = 1\nconfig.frequent = 1\nconfig.checkpoint_every = 1\n"
QUIET = "config.preview_every = 1000\nconfig.frequent = 1000\nconfig.checkpoint_every = 1000\n"


def test_every_built_in_stage_kind_has_a_contract_case():
    built_in = {k for k, cls in STAGE_KINDS.items() if cls.__module__ == stage_kinds.__name__}
    assert built_in == set(CASES)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_trained_modules_train_at_every_step_and_side_outputs_do_not_change_weights(tmp_path, kind, monkeypatch):
    cls = STAGE_KINDS[kind]
    real_step = cls.step
    seen = []

    def checked_step(self, batch, ctx):
        for name in self.spec.train:
            evaluating = all_training(ctx.models.get(name))
            seen.append((self.kind, ctx.global_step + 1, name, evaluating))
        return real_step(self, batch, ctx)

    monkeypatch.setattr(cls, "step", checked_step)
    stages = "[" + ", ".join(CASES[kind]) + "]"
    outputs = {}
    for label, knobs in (("busy", BUSY), ("quiet", QUIET)):
        cfg = load_config(write_job(tmp_path, stages, knobs, name=f"{label}.py"))
        out = tmp_path / label
        assert run_training(cfg, output=str(out), evaluate=False)["status"] == "finished"
        outputs[label] = out
    trained = [s for s in seen if s[0] == kind]
    assert len(trained) == 2 * 3 * len(cfg.stages[-1]["train"])  # both runs, 3 steps, each trained module
    bad = [s for s in seen if s[3]]
    assert not bad, f"trained modules in eval mode: {bad[:3]}"
    if kind == "inpaint":  # the busy run really wrote previews between steps
        assert len(list((outputs["busy"] / "previews").glob("inpaint_step*.png"))) == 3
    for stage in cfg.stages:
        assert_states_equal(module_states(outputs["busy"] / f"stage_{stage['name']}.pt"),
                            module_states(outputs["quiet"] / f"stage_{stage['name']}.pt"))
    a, b = load(outputs["busy"] / "model.pt"), load(outputs["quiet"] / "model.pt")
    assert_states_equal({"model": a}, {"model": b})


def test_a_preview_leaves_every_submodule_mode_and_weight_as_it_was():
    import torch

    from insightface_g2d import get_model
    from insightface_g2d.training.models import ModelSet
    from insightface_g2d.training.modes import module_modes
    from insightface_g2d.training.preview import write_preview
    from insightface_g2d.training.stages import Stage

    torch.manual_seed(0)
    models = ModelSet()
    models.add("backbone", get_model("g2d_t", num_features=32))
    models.add("decoder", _decoder())
    models.freeze_all()
    models.set_trainable("encoder")
    models.set_trainable("decoder")
    before = {n: module_modes(m) for n, m in models.modules.items()}
    weights = models.state_dicts()

    class Ctx:
        device = torch.device("cpu")

    ctx = Ctx()
    ctx.models = models
    batch = {"masked": torch.rand(2, 3, 112, 112) * 2 - 1, "clean": torch.rand(2, 3, 112, 112) * 2 - 1}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_preview(f"{tmp}/p.png", Stage({"name": "x"}, {}), batch, ctx)
    assert {n: module_modes(m) for n, m in models.modules.items()} == before
    assert_states_equal(models.state_dicts(), weights)
    assert before["backbone"]["encoder"] and not before["backbone"][""]  # the case the old preview broke


def _decoder():
    from insightface_g2d.backbones.g2d import G2D_SPECS, InpaintingDecoder

    return InpaintingDecoder(G2D_SPECS["g2d_t"].descriptor_channels, widths=(16, 8, 8))

"""The contract between the loop and every registered stage kind, parametrised over the registry.

Each kind's declarations (kinds/base.py) must agree with what it builds and does; the modules a
stage trains are in train mode (every submodule) at every step; nothing but the data and the seed
decides the final weights (not how often previews, log lines or checkpoints are written, nor a stop
and resume in the middle of the stage)."""
import copy
import dataclasses
import os

import pytest

from insightface_g2d.training.config import load_config
from insightface_g2d.training.kinds import (COMMON_DEFAULTS, STAGE_KINDS, face_restorer, final_network,
                                           fixed_module_names, module_parts)
from insightface_g2d.training.kinds.registry import check_kind
from insightface_g2d.training.runner import run_training
from insightface_g2d.training.stages import build_stage

from training_tools import assert_states_equal, load, module_states, one_thread, write_job

_threads = pytest.fixture(autouse=True)(one_thread)

BASE = 'dict(name="base", kind="arcface", network="g2d_t", steps={n}, optimizer="adamw", lr=1e-3, scale=16.0)'
# Tiny runs tuned for speed (small widths, batches) or stability (margins, learning rates): the
# stages before the kind's own stage that it needs (a teacher), then the kind's stage. Optional: a
# kind without an entry gets `default_case` (a new kind is checked without editing this file).
CASES = {
    "arcface": [BASE.format(n=3)],
    "inpaint": [BASE.format(n=1), 'dict(name="inpaint", steps=3, batch_size=4, decoder_widths=(16, 8, 8), '
                                  'disc_widths=(8, 8, 8))'],
    "reform": [BASE.format(n=1), 'dict(name="reform", steps=3)'],
    "classify": ['dict(name="classify", steps=3)'],
    "finetune": ['dict(name="finetune", steps=3, lr=0.01, margin_list=(1.0, 0.0, 0.35), scale=16.0)'],
    "distill": [BASE.format(n=1), 'dict(name="distill", steps=3, student_geometry="teacher", losses=dict(margin=1.0), '
                                  'margin_list=(1.0, 0.0, 0.35), scale=16.0)'],
}
BUSY = "config.preview_every = 1\nconfig.frequent = 1\nconfig.checkpoint_every = 1\n"
QUIET = "config.preview_every = 1000\nconfig.frequent = 1000\nconfig.checkpoint_every = 1000\n"
KINDS = sorted(STAGE_KINDS)


def module_modes(module):
    """{qualified submodule name: training flag} of `module` and all its submodules ('' is itself)."""
    return {name: m.training for name, m in module.named_modules()}


def in_eval_mode(module):
    """Names of submodules of `module` in eval mode ([] when every one trains)."""
    return [name or "<top>" for name, flag in module_modes(module).items() if not flag]


def default_case(kind, folder):
    """A tiny run derived from the kind's declarations: its own stage of 3 steps with every default,
    after a 1-step arcface stage (config.teacher = dict(stage="base")) when it needs a teacher."""
    own = f'dict(name="mine", kind="{kind}", steps=3)'
    probe = load_config(write_job(folder, f"[{own}]", name="probe.py"))
    needs_teacher = any(build_stage(probe.stages[0], probe).teacher_use())
    return ([BASE.format(n=1)] if needs_teacher else []) + [own]


def _stages(kind, folder):
    case = CASES[kind] if kind in CASES else default_case(kind, folder)
    return "[" + ", ".join(case) + "]"


def test_every_hand_written_case_is_of_a_registered_kind():
    assert set(CASES) <= set(KINDS)


def test_a_kind_without_a_case_is_checked_with_one_derived_from_its_declarations(tmp_path, monkeypatch):
    from trust_tools import QuadStage

    class TaughtQuad(QuadStage):
        kind = "taught_quad"

        def teacher_use(self):
            return True, False

    for cls in (QuadStage, TaughtQuad):
        monkeypatch.setitem(STAGE_KINDS, cls.kind, cls)
    mine = 'dict(name="mine", kind="quad", steps=3)'
    assert default_case("quad", tmp_path) == [mine]
    assert default_case("taught_quad", tmp_path) == [BASE.format(n=1), mine.replace('"quad"', '"taught_quad"')]
    # the contract checks run on it as on a built-in kind
    test_resolve_completes_a_copy_and_never_changes_the_spec_it_checks(tmp_path, "quad", monkeypatch)
    test_what_a_stage_declares_matches_what_it_builds(tmp_path, "quad")
    (tmp_path / "resume").mkdir()
    test_a_stop_and_resume_in_the_middle_of_the_stage_gives_the_same_weights(tmp_path / "resume", "quad")


@pytest.mark.parametrize("kind", KINDS)
def test_declarations_are_consistent(kind):
    cls = STAGE_KINDS[kind]
    assert check_kind(cls) is cls and cls.kind == kind
    assert dataclasses.is_dataclass(cls.settings) and cls.settings.__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):  # defaults cannot be changed at run time
        setattr(cls.settings(), dataclasses.fields(cls.settings)[0].name, None)
    weights = cls.default_losses()
    assert weights and all(isinstance(w, float) and w >= 0 for w in weights.values()) and any(weights.values())
    assert set(cls.trainable) <= set(cls.allowed_train)
    assert isinstance(cls.primary_group, str) and isinstance(cls.serves_as_teacher, bool)


@pytest.mark.parametrize("kind", KINDS)
def test_resolve_completes_a_copy_and_never_changes_the_spec_it_checks(tmp_path, kind, monkeypatch):
    cls = STAGE_KINDS[kind]
    real = cls.resolve.__func__
    seen = []

    def watched(klass, spec, cfg):
        before = copy.deepcopy(spec)
        out = real(klass, spec, cfg)
        seen.append((spec == before, out is not spec))
        return out

    monkeypatch.setattr(cls, "resolve", classmethod(watched))
    cfg = load_config(write_job(tmp_path, _stages(kind, tmp_path)))
    assert seen and all(unchanged and copied for unchanged, copied in seen)
    spec = cfg.stages[-1]
    assert set(spec) == set(COMMON_DEFAULTS) | set(cls.default_values())
    assert set(spec["losses"]) == set(cls.default_losses())


@pytest.mark.parametrize("kind", KINDS)
def test_what_a_stage_declares_matches_what_it_builds(tmp_path, kind):
    cfg = load_config(write_job(tmp_path, _stages(kind, tmp_path)))
    stage = build_stage(cfg.stages[-1], cfg)
    built = stage.module_factories(4)
    # a module it builds is named after the stage or is one of the fixed names no stage may take
    assert all(stage.name in m or m in fixed_module_names() for m in built)
    assert set(stage.module_parts) <= set(module_parts())
    assert set(stage.spec.train) <= set(built) | {"encoder", "reformer"}  # parts of the backbone
    groups = stage.optimizer_groups()
    assert stage.primary_group in groups
    assert sorted(m for names in groups.values() for m in names) == sorted(stage.spec.train)
    assert set(stage.heads()) <= set(built)
    net = stage.network()
    if stage.serves_as_teacher:
        assert net is not None
    if net is not None:
        assert net.module in built and net.embedding_size >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_stage_name_specs_give_the_network_the_stage_declares(tmp_path, kind):
    """"stage:NAME" in config.eval.models and a stage teacher are the module of Stage.network(),
    whatever the kind names its modules."""
    from insightface_g2d.errors import ConfigError
    from insightface_g2d.training.evaluate import resolve_model
    from insightface_g2d.training.runner import build_models
    from insightface_g2d.training.teacher import TeacherProvider

    cfg = load_config(write_job(tmp_path, _stages(kind, tmp_path)))
    stages = [build_stage(s, cfg) for s in cfg.stages]
    models = build_models(stages, 4, seed=0)
    stage = stages[-1]
    net = stage.network()
    if net is None:
        with pytest.raises(ConfigError, match="trains a network"):
            resolve_model(f"stage:{stage.name}", models, stages, "cpu")
        return
    want = {"net": models.get(net.module).state_dict()}
    embedder = resolve_model(f"stage:{stage.name}", models, stages, "cpu")
    assert_states_equal({"net": embedder.model.state_dict()}, want)
    provider = TeacherProvider(models, stages, dataset=None, device="cpu")
    if stage.serves_as_teacher:
        assert_states_equal({"net": provider.stage_network(stage.name, "later", [stage.name]).state_dict()}, want)
    else:
        with pytest.raises(ConfigError, match="can teach"):
            provider.stage_network(stage.name, "later", [stage.name])


@pytest.mark.parametrize("kind", KINDS)
def test_trained_modules_train_at_every_step_and_side_outputs_do_not_change_weights(tmp_path, kind, monkeypatch):
    cls = STAGE_KINDS[kind]
    real_step = cls.step
    seen = []

    def checked_step(self, batch, ctx):
        for name in self.spec.train:
            evaluating = in_eval_mode(ctx.models.get(name))
            seen.append((self.kind, ctx.global_step + 1, name, evaluating))
        return real_step(self, batch, ctx)

    monkeypatch.setattr(cls, "step", checked_step)
    outputs = {}
    for label, knobs in (("busy", BUSY), ("quiet", QUIET)):
        cfg = load_config(write_job(tmp_path, _stages(kind, tmp_path), knobs, name=f"{label}.py"))
        out = tmp_path / label
        assert run_training(cfg, output=str(out), evaluate=False)["status"] == "finished"
        outputs[label] = out
    trained = [s for s in seen if s[0] == kind]
    assert len(trained) == 2 * 3 * len(cfg.stages[-1]["train"])  # both runs, 3 steps, each trained module
    bad = [s for s in seen if s[3]]
    assert not bad, f"trained modules in eval mode: {bad[:3]}"
    stage = build_stage(cfg.stages[-1], cfg)
    if stage.restores_faces:  # the busy run really wrote previews between steps
        assert len(list((outputs["busy"] / "previews").glob(f"{stage.name}_step*.png"))) == 3
    for name in stage.export_files():
        assert (outputs["busy"] / name).is_file()
    for stage_spec in cfg.stages:
        assert_states_equal(module_states(outputs["busy"] / f"stage_{stage_spec['name']}.pt"),
                            module_states(outputs["quiet"] / f"stage_{stage_spec['name']}.pt"))
    a, b = load(outputs["busy"] / "model.pt"), load(outputs["quiet"] / "model.pt")
    assert_states_equal({"model": a}, {"model": b})
    # model.pt is the network the stages declare as final
    final = final_network([build_stage(s, cfg) for s in cfg.stages])
    assert_states_equal({"model": a}, {"model": module_states(outputs["busy"] / f"stage_{stage.name}.pt")[final.module]})


@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_and_resume_in_the_middle_of_the_stage_gives_the_same_weights(tmp_path, kind):
    straight = load_config(write_job(tmp_path, _stages(kind, tmp_path), QUIET, name="straight.py"))
    assert run_training(straight, output=str(tmp_path / "straight"), evaluate=False)["status"] == "finished"

    cfg = load_config(write_job(tmp_path, _stages(kind, tmp_path), QUIET, name="stopped.py"))
    out = tmp_path / "stopped"

    def stop(run, step):
        if run.stage.kind == kind and step == 2:
            run.stop.request()

    assert run_training(cfg, output=str(out), evaluate=False, on_step=stop)["status"] == "stopped"
    assert os.path.isfile(out / "checkpoint_gpu_0.pt")
    assert run_training(cfg, output=str(out), evaluate=False)["status"] == "finished"
    for stage_spec in cfg.stages:
        name = f"stage_{stage_spec['name']}.pt"
        assert_states_equal(module_states(tmp_path / "straight" / name), module_states(out / name))
    last = f"stage_{cfg.stages[-1]['name']}.pt"
    assert load(tmp_path / "straight" / last)["trainer"]["global_step"] == load(out / last)["trainer"]["global_step"] == 3


def test_a_preview_leaves_every_submodule_mode_and_weight_as_it_was():
    import torch

    from insightface_g2d import get_model
    from insightface_g2d.training.models import ModelSet
    from insightface_g2d.training.preview import write_preview

    torch.manual_seed(0)
    models = ModelSet(module_parts())
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

    restoring = next(cls for cls in STAGE_KINDS.values() if cls.restores_faces)
    with tempfile.TemporaryDirectory() as tmp:
        write_preview(f"{tmp}/p.png", restoring({"name": "x"}, {}), batch, ctx)
    assert {n: module_modes(m) for n, m in models.modules.items()} == before
    assert_states_equal(models.state_dicts(), weights)
    assert before["backbone"]["encoder"] and not before["backbone"][""]  # the case the old preview broke


def _decoder():
    from insightface_g2d.backbones.g2d import G2D_SPECS, InpaintingDecoder

    return InpaintingDecoder(G2D_SPECS["g2d_t"].descriptor_channels, widths=(16, 8, 8))


@pytest.mark.parametrize("name", fixed_module_names())
def test_a_stage_cannot_take_the_name_of_a_module_a_kind_builds(tmp_path, name):
    from insightface_g2d.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{name!r} is a module name"):
        load_config(write_job(tmp_path, f'[dict(name="{name}", kind="arcface", steps=1)]'))


def test_the_fixed_module_names_follow_the_registry(tmp_path, monkeypatch):
    """A kind registered with a module of its own reserves its name; the built-in set is what the
    built-in kinds train or own."""
    assert {"backbone", "encoder", "reformer"} <= set(fixed_module_names())
    stages = '[dict(name="critic", kind="arcface", steps=1)]'
    assert [s["name"] for s in load_config(write_job(tmp_path, stages)).stages] == ["critic"]

    class CriticStage(STAGE_KINDS["arcface"]):
        kind = "critic_kind"
        allowed_train = trainable = ("critic",)

    monkeypatch.setitem(STAGE_KINDS, CriticStage.kind, CriticStage)
    assert "critic" in fixed_module_names()
    from insightface_g2d.errors import ConfigError

    with pytest.raises(ConfigError, match="'critic' is a module name"):
        load_config(write_job(tmp_path, stages, name="b.py"))


def test_previews_draw_restored_faces_with_the_restorer_of_the_same_network(tmp_path):
    """Each stage's previews show the faces of the run's face-restoring stage when it trains the
    same network (a later stage shows what that restorer makes of the network now), else none."""
    from training_tools import TINY_STAGES

    cfg = load_config(write_job(tmp_path, TINY_STAGES))
    stages = [build_stage(s, cfg) for s in cfg.stages]
    restoring = [s for s in stages if s.restores_faces]
    assert len(restoring) == 1
    for stage in stages:
        same = stage.network() is not None and stage.network().module == restoring[0].network().module
        assert face_restorer(stage, stages) is (restoring[0] if same or stage.restores_faces else None)
    # a run without a restoring stage draws no restored row for any stage
    others = [s for s in stages if not s.restores_faces]
    assert all(face_restorer(s, others) is None for s in others)
    assert any(s.network().module == restoring[0].network().module for s in others)  # the case that matters

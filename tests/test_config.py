"""Config files: merge over g2d_base.py, validation with suggestions, --set, arcface_torch loading."""
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from insightface_g2d.errors import ConfigError
from insightface_g2d.training.config import apply_overrides, load_config, packaged_base_path

from training_tools import write_job

CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "configs"
JOBS = sorted(p for p in CONFIGS.glob("*.py") if p.name != "g2d_base.py")
# A real arcface_torch folder (insightface's recognition/arcface_torch) for the tests that load the
# job files with its own base.py and get_config; they are skipped without it.
ARCFACE_TORCH_ROOT = os.environ.get("ARCFACE_TORCH_ROOT", "")


def test_packaged_base_is_the_repo_file():
    assert packaged_base_path() == CONFIGS / "g2d_base.py"


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.name)
def test_shipped_job_files_load_and_validate(job):
    cfg = load_config(job)
    assert cfg.job_name == job.stem and cfg.stages
    for stage in cfg.stages:
        assert stage["batch_size"] >= 1 and stage["lr"] > 0 and stage["train"]


def test_job_values_override_base_and_stage_entries_merge(tmp_path):
    job = write_job(tmp_path, """[
        dict(name="reform", epochs=3),
        dict(name="inpaint", steps=10, losses=dict(identity=0.0)),
    ]""", extra="config.teacher = dict(network='r50', checkpoint='t.pth')\n")
    cfg = load_config(job)
    assert [s["name"] for s in cfg.stages] == ["reform", "inpaint"]  # the job decides which and in what order
    reform, inpaint = cfg.stages
    assert reform["epochs"] == 3 and reform["steps"] is None
    assert reform["momentum"] == 0.9 and reform["masks"]["prob"] == 0.75  # kept from the base entry
    assert inpaint["steps"] == 10 and inpaint["epochs"] is None  # base epochs dropped when steps is set
    assert inpaint["losses"] == {"l1": 1.0, "identity": 0.0, "adversarial": 0.01}
    assert inpaint["betas"] == (0.5, 0.9) and inpaint["batch_size"] == 64  # from the base inpaint entry
    assert reform["batch_size"] == 8  # None in the stage -> config.batch_size of the job
    assert cfg.teacher == {"network": "r50", "checkpoint": "t.pth"}  # replaced, not merged
    assert cfg.masks["positions"] == ("normal",) and cfg.masks["prob"] == 1.0


@pytest.mark.parametrize("line, pattern", [
    ("config.batch_sise = 4", r"unknown config key 'batch_sise'.*did you mean 'batch_size'"),
    ("config.embeding_size = 4", r"did you mean 'embedding_size'"),
    ("config.batch_size = '8'", r"config.batch_size = '8' has the wrong type"),
    ("config.network = 'r51'", r"network 'r51' is not a known network.*did you mean 'r50'"),
    ("config.optimizer = 'rmsprop'", r"optimizer 'rmsprop' unknown"),
    ("config.masks = dict(prob=1.5)", r"prob must be a number in \[0, 1\]"),
    ("config.masks = dict(styles=('surgicle',))", r"unknown style 'surgicle'.*did you mean 'surgical'"),
    ("config.masks = dict(probability=0.5)", r"unknown key 'probability' in config.masks.*did you mean 'prob'"),
    ("config.teacher = dict(netwrok='r50')", r"unknown key 'netwrok' in config.teacher.*did you mean 'network'"),
])
def test_top_level_errors(tmp_path, line, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write_job(tmp_path, extra=line + "\n"))


@pytest.mark.parametrize("stages, pattern", [
    ('[dict(name="reform", epoch=2)]', r"stage 'reform': unknown key 'epoch'.*did you mean 'epochs'"),
    ('[dict(name="reformm", steps=2)]', r"unknown stage kind 'reformm'.*did you mean 'reform'"),
    ('[dict(name="x", kind="inpant", steps=2)]', r"unknown stage kind 'inpant'.*did you mean 'inpaint'"),
    ('[dict(name="reform", steps=2, losses=dict(rd4=1.0))]', r"unknown loss term 'rd4'"),
    ('[dict(name="reform", steps=2, train=["decoder"])]', r"cannot train module 'decoder'"),
    ('[dict(name="reform", steps=2, epochs=1)]', r"set epochs or steps, not both"),
    ('[dict(name="cls", kind="classify")]', r"set its length"),
    ('[dict(name="reform", steps=0)]', r"steps must be an integer >= 1"),
    ('[dict(name="reform", steps=2, optimizer="adamx")]', r"optimizer 'adamx' unknown.*did you mean 'adam'"),
    ('[dict(name="reform", steps=2), dict(name="reform", steps=3)]', r"two stages are named 'reform'"),
    ('[dict(name="a b", kind="reform", steps=2)]', r"name must be a word"),
    ('[dict(name="reform", steps=2, losses=dict(rd1=0, rd2=0, rd3=0))]', r"every loss weight is 0"),
    ('[dict(name="c", kind="classify", steps=2, head="cosface")]', r"head must be 'softmax' or 'margin'"),
    ('[dict(name="f", kind="finetune", steps=2, margin_list=(0.9, 0.4, 0.0))]', r"margin_list .* not supported"),
    ('[]', r"non-empty list"),
])
def test_stage_errors(tmp_path, stages, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write_job(tmp_path, stages))


def test_g2d_stages_need_a_g2d_network(tmp_path):
    with pytest.raises(ConfigError, match="config.network is 'r18'.*G2D variant"):
        load_config(write_job(tmp_path, extra="config.network = 'r18'\n"))


def test_set_overrides(tmp_path):
    job = write_job(tmp_path)
    cfg = load_config(job, ["lr=0.5", "stages.reform.epochs=2", "masks.prob=0.25", "teacher.stage='base'",
                            "rec=synthetic:ids=3,per_id=4", "stages.inpaint.losses.identity=0"])
    assert cfg.lr == 0.5 and cfg.masks.prob == 0.25 and cfg.rec == "synthetic:ids=3,per_id=4"
    reform = {s["name"]: s for s in cfg.stages}["reform"]
    assert reform["epochs"] == 2 and reform["steps"] is None
    assert {s["name"]: s for s in cfg.stages}["inpaint"]["losses"]["identity"] == 0
    for bad, pattern in [("lr", "expected KEY=VALUE"), ("lrr=1", "did you mean 'lr'"),
                         ("stages.refrom.steps=1", "no stage named 'refrom'.*did you mean 'reform'")]:
        with pytest.raises(ConfigError, match=pattern):
            load_config(job, [bad])
    assert apply_overrides({"a": 1}, ["a=[1, 2]"]) == {"a": [1, 2]}
    # numbers arcface_torch jobs write as int or float are both accepted
    ok = load_config(job, ["interclass_filtering_threshold=0.4", "warmup_epoch=1", "weight_decay=0"])
    assert ok.interclass_filtering_threshold == 0.4 and ok.warmup_epoch == 1


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("config = edict(\n")
    with pytest.raises(ConfigError, match="syntax error"):
        load_config(bad)
    none = tmp_path / "none.py"
    none.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="must define `config = edict\\(\\)`"):
        load_config(none)


def test_base_beside_the_job_wins(tmp_path):
    base = (CONFIGS / "g2d_base.py").read_text().replace('config.seed = 2048', 'config.seed = 99')
    (tmp_path / "g2d_base.py").write_text(base)
    job = tmp_path / "job.py"
    job.write_text("from easydict import EasyDict as edict\nconfig = edict()\nconfig.network = 'g2d_t'\n")
    assert load_config(job).seed == 99


def _stand_in_get_config(config_file):
    """What arcface_torch's utils_config.get_config does: import configs.base, then the
    job module from configs/, update the base config with it, default output to work_dirs/<job>."""
    job_name = Path(config_file).stem
    cfg = importlib.import_module("configs.base").config
    cfg.update(importlib.import_module(f"configs.{job_name}").config)
    if cfg.output is None:
        cfg.output = os.path.join("work_dirs", job_name)
    return cfg


def _load_like_arcface_torch(folder, job_name, get_config):
    """get_config(f"configs/{job_name}.py") run in `folder` as arcface_torch's scripts run it."""
    sys.path.insert(0, str(folder))
    cwd = os.getcwd()
    try:
        for mod in [m for m in sys.modules if m == "configs" or m.startswith("configs.")]:
            del sys.modules[mod]
        os.chdir(folder)
        return get_config(f"configs/{job_name}.py")
    finally:
        os.chdir(cwd)
        sys.path.remove(str(folder))
        for mod in [m for m in sys.modules if m == "configs" or m.startswith("configs.")]:
            del sys.modules[mod]


# the keys of arcface_torch's configs/base.py (values as a user's base might set them)
ARCFACE_BASE = """from easydict import EasyDict as edict
config = edict()
config.margin_list = (1.0, 0.5, 0.0)
config.network = "r50"
config.resume = False
config.save_all_states = False
config.output = "ms1mv3_arcface_r50"
config.embedding_size = 512
config.sample_rate = 1.0
config.interclass_filtering_threshold = 0
config.fp16 = False
config.batch_size = 128
config.optimizer = "sgd"
config.lr = 0.1
config.momentum = 0.9
config.weight_decay = 5e-4
config.verbose = 2000
config.frequent = 10
config.dali = False
config.dali_aug = False
config.gradient_acc = 1
config.seed = 2048
config.num_workers = 2
config.using_wandb = False
"""


def _check_job_as_arcface_torch_reads_it(tmp_path, job, base_text, get_config):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "__init__.py").write_text("")
    (configs / "base.py").write_text(base_text)
    shutil.copy(job, configs / job.name)
    cfg = _load_like_arcface_torch(tmp_path, job.stem, get_config)
    ours = load_config(job)
    for key in ("network", "embedding_size", "rec", "num_classes", "num_epoch", "batch_size", "lr", "margin_list"):
        if key in cfg:
            assert cfg[key] == ours[key] or (key == "num_classes" and cfg[key] is None), key
    assert cfg.network == ours.network
    for key in ("rec", "num_classes", "num_image", "num_epoch", "warmup_epoch", "val_targets"):
        assert key in cfg, f"{job.name} must set arcface_torch's job key {key}"


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.name)
def test_job_files_load_as_arcface_torch_loads_them(tmp_path, job):
    _check_job_as_arcface_torch_reads_it(tmp_path, job, ARCFACE_BASE, _stand_in_get_config)


@pytest.mark.skipif(not ARCFACE_TORCH_ROOT, reason="ARCFACE_TORCH_ROOT is not set: point it at insightface's "
                    "recognition/arcface_torch to load the job files with its own base.py and get_config")
@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.name)
def test_job_files_load_in_a_real_arcface_torch(tmp_path, job):
    root = Path(ARCFACE_TORCH_ROOT)
    spec = importlib.util.spec_from_file_location("arcface_utils_config", root / "utils" / "utils_config.py")
    utils_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils_config)
    base_text = (root / "configs" / "base.py").read_text()
    _check_job_as_arcface_torch_reads_it(tmp_path, job, base_text, utils_config.get_config)


def test_real_valued_keys_accept_floats_whatever_the_base_spells(tmp_path):
    """arcface_torch's base.py writes `interclass_filtering_threshold = 0` and `warmup_epoch = 0`:
    a g2d_base.py in that style still takes 0.2 / 1.5 there, while count keys stay strict ints."""
    base = (CONFIGS / "g2d_base.py").read_text()
    for key in ("interclass_filtering_threshold", "warmup_epoch"):
        assert f"config.{key} = 0.0" in base
        base = base.replace(f"config.{key} = 0.0", f"config.{key} = 0")
    (tmp_path / "g2d_base.py").write_text(base)
    job = write_job(tmp_path)
    cfg = load_config(job, ["interclass_filtering_threshold=0.2", "warmup_epoch=1.5"])
    assert cfg.interclass_filtering_threshold == 0.2 and cfg.warmup_epoch == 1.5
    for bad in ("batch_size=8.0", "interclass_filtering_threshold=True", "warmup_epoch='1'"):
        with pytest.raises(ConfigError, match="has the wrong type"):
            load_config(job, [bad])


@pytest.mark.parametrize("sets, pattern", [
    (["margin_list=[None, None, None]"], r"config.margin_list must be 3 numbers"),
    (["stages.base.margin_list=('a', 'b', 'c')"], r"stage 'base': margin_list must be 3 numbers"),
    (["stages.base.scale=0"], r"stage 'base': scale must be a number > 0"),
    (["stages.base.inputs=5"], r"inputs must be a list"),
    (["stages.base.embedding_size=2.5"], r"embedding_size must be an integer >= 1"),
    (["stages.base.interclass_filtering_threshold='x'"], r"interclass_filtering_threshold must be a number"),
    (["stages.inpaint.betas=(0.5, 1.0)"], r"betas must be two numbers in \[0, 1\)"),
    (["stages.inpaint.d_betas=[None, None]"], r"d_betas must be two numbers"),
    (["stages.inpaint.hole_weight='6'"], r"hole_weight must be a number"),
    (["stages.inpaint.d_lr=-1"], r"d_lr must be a number > 0"),
    (["stages.reform.train=5"], r"train must be a list of module names"),
    (["stages.reform.train=['{', '{x}']"], r"cannot train module '\{'"),
    (["stages=0", "stages.reform.steps=3"], r"config.stages is not a list of stages"),
])
def test_stage_values_are_checked_before_training(tmp_path, sets, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write_job(tmp_path), sets)


@pytest.mark.parametrize("line, pattern", [
    ("config.margin_list = (1.0, float('nan'), 0.0)", r"config.margin_list must be 3 numbers"),
    ("config.margin_list = (1.0, 10**400, 0.0)", r"config.margin_list must be 3 numbers"),
    ("config.stages[2]['lr'] = float('inf')", r"stage 'reform': lr must be a number > 0"),
    ("config.stages[2]['steps'] = 10**400", r"stage 'reform': steps must be an integer >= 1"),
    ("config.stages[2]['epochs'] = float('nan'); del config.stages[2]['steps']", r"epochs must be a number > 0"),
])
def test_non_finite_numbers_are_refused(tmp_path, line, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write_job(tmp_path, extra=line + "\n"))


def test_importing_the_config_module_does_not_import_torch():
    """Config errors come before the ~2 s of importing torch: the stage kinds are imported when needed."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    code = "import insightface_g2d.training.config, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True)
    assert out.stdout.strip() == "False"

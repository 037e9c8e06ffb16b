"""One source of truth for configuration values: each stage kind's settings dataclass holds its
defaults, g2d_base.py holds only the recipe's choices, every shipped config resolves to them, and
arcface_torch keys g2d-train does not read are named when a job sets them."""
import ast
import dataclasses
from pathlib import Path

import pytest

from insightface_g2d.training.config import (ARCFACE_TORCH_ONLY, execute_config_file, load_config, merge,
                                             packaged_base_path)
from insightface_g2d.training.kinds import COMMON_DEFAULTS, STAGE_KINDS, known_keys
from insightface_g2d.training.loop import stage_length
from insightface_g2d.training.stages import FALLBACKS, build_stage

from training_tools import write_job

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "recipes" / "configs").glob("*.py"))
PACKAGE = REPO / "insightface_g2d"


def _same(resolved, given):
    """A resolved value against the value a config or a default gave (resolution normalises
    lists to tuples and ints to floats)."""
    if isinstance(given, (list, tuple)) and isinstance(resolved, (list, tuple)):
        return len(given) == len(resolved) and all(_same(r, g) for r, g in zip(resolved, given))
    return resolved == given


def test_the_base_recipe_restates_no_kind_default():
    base = execute_config_file(packaged_base_path())
    for entry in base["stages"]:
        kind = STAGE_KINDS[entry.get("kind") or entry["name"]]
        defaults = {**COMMON_DEFAULTS, **kind.default_values()}
        restated = [k for k, v in entry.items() if k not in ("name", "kind", "losses") and _same(v, defaults.get(k))]
        assert not restated, f"g2d_base.py stage {entry['name']!r} restates defaults of its kind: {restated}"
        losses = entry.get("losses") or {}
        assert not [t for t, w in losses.items() if kind.default_losses().get(t) == w]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_stage_resolves_to_its_entry_over_its_kind_defaults(path):
    """A key the (merged) stage entry sets resolves to that value; one it leaves out resolves to the
    kind's dataclass default, or for keys left None there, to the top-level config."""
    cfg = load_config(path)
    base = execute_config_file(packaged_base_path())
    job = {} if path.name == "g2d_base.py" else execute_config_file(path)
    entries = merge(base, job)["stages"]
    assert [e["name"] for e in entries] == [s["name"] for s in cfg.stages]
    for entry, spec in zip(entries, cfg.stages):
        kind = STAGE_KINDS[spec["kind"]]
        defaults = kind.default_values()
        for key, default in defaults.items():
            if key in entry:
                assert _same(spec[key], entry[key]), (spec["name"], key)
            elif default is not None:
                assert _same(spec[key], default), (spec["name"], key)
        for key in FALLBACKS:
            if entry.get(key) is None and {**COMMON_DEFAULTS, **defaults}.get(key) is None:
                assert _same(spec[key], cfg[key]), (spec["name"], key)
        weights = {**kind.default_losses(), **(entry.get("losses") or {})}
        assert spec["losses"] == pytest.approx(weights)


def test_the_recipe_reform_stage_warms_up_one_epoch_where_the_kind_default_is_none(tmp_path):
    job = tmp_path / "base_stages.py"  # a job file that keeps g2d_base.py's stages
    job.write_text("from easydict import EasyDict as edict\nconfig = edict()\nconfig.batch_size = 128\n")
    cfg = load_config(job)
    reform = next(s for s in cfg.stages if s["name"] == "reform")
    assert reform["warmup_epochs"] == 1 and reform["warmup_steps"] is None
    assert known_keys(STAGE_KINDS["reform"])["warmup_epochs"] == 0.0

    class OneProcess:
        world_size = 1

    total, warmup, batches = stage_length(build_stage(reform, cfg), 128 * 50, OneProcess())
    assert batches == 50 and warmup == 50 and total == 20 * 50  # 1 of 20 epochs at batch 128


def _reads(tree, key):
    """Whether `tree` reads config key `key`: x.key, x["key"] or x.get("key")."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == key and isinstance(node.ctx, ast.Load):
            return True
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == key:
            return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == key):
            return True
    return False


def test_the_keys_reported_as_unused_are_arcface_torch_keys_nothing_reads():
    base = execute_config_file(packaged_base_path())
    trees = [ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")]
    for key in ARCFACE_TORCH_ONLY:
        assert key in base, key
        assert not any(_reads(t, key) for t in trees), f"{key} is read somewhere: drop it from ARCFACE_TORCH_ONLY"
    assert any(_reads(t, "using_wandb") for t in trees) and any(_reads(t, "num_image") for t in trees)


def test_a_job_that_sets_unused_arcface_torch_keys_is_told_once(tmp_path):
    quiet = load_config(write_job(tmp_path, '[dict(name="classify", steps=1)]', "config.verbose = 2000\n",
                                  name="same_as_base.py"))
    assert quiet.config_notes == []  # g2d_base.py's own value: nothing to say
    cfg = load_config(write_job(tmp_path, '[dict(name="classify", steps=1)]',
                                'config.dali = True\nconfig.val_targets = ["lfw"]\n'), ["sample_rate=0.3"])
    assert cfg.config_notes == ["config keys accepted for arcface_torch compatibility but not used by g2d-train: "
                                "dali = True, val_targets = ['lfw'], sample_rate = 0.3"]


def test_num_image_is_compared_with_the_dataset(tmp_path):
    from insightface_g2d.training.runner import dataset_notes, load_dataset

    cfg = load_config(write_job(tmp_path, '[dict(name="classify", steps=1)]', "config.num_image = 31\n"))
    data = load_dataset(cfg)
    assert len(data) == 32
    assert dataset_notes(cfg, data) == [
        f"config.num_image = 31 but dataset {cfg.rec!r} has 32 images; g2d-train uses the dataset's count (fix "
        "num_image, or set it to None, for arcface_torch)"]
    cfg.num_image = 32
    assert dataset_notes(cfg, data) == []


def test_kind_settings_are_frozen_dataclasses_with_a_default_for_every_field():
    for cls in STAGE_KINDS.values():
        assert all(f.default is not dataclasses.MISSING for f in dataclasses.fields(cls.settings))


def test_validate_returns_a_new_config_and_leaves_the_merged_one_as_it_was():
    import copy

    from insightface_g2d.training.config import validate

    base = execute_config_file(packaged_base_path())
    merged = merge(base, {})
    before = copy.deepcopy(merged)
    cfg = validate(merged, base)
    assert merged == before  # still the entries as written, not the resolved stages
    assert [s["name"] for s in cfg.stages] == [e["name"] for e in merged["stages"]]
    assert all(set(s) == set(known_keys(STAGE_KINDS[s["kind"]])) for s in cfg.stages)
    assert all(set(e) < set(s) for e, s in zip(merged["stages"], cfg.stages))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_no_shipped_config_trips_the_unread_key_warning(path):
    """Our own configs say nothing on the first screen but the arcface_torch-only keys they carry for
    arcface_torch (val_targets)."""
    notes = load_config(path).config_notes
    assert not [n for n in notes if "read by no stage" in n], notes
    assert all(n.startswith("config keys accepted for arcface_torch compatibility") for n in notes), notes
    if path.stem.startswith(("demo", "lfw")):  # the quick start and the LFW recipes: not a word
        assert notes == []


def test_a_key_restating_g2d_base_is_not_reported_as_unread(tmp_path):
    stages = '[dict(name="q", kind="classify", steps=1, lr=0.1)]'
    assert load_config(write_job(tmp_path, stages, "config.lr = 0.1\nconfig.weight_decay = 5e-4\n")).config_notes == []
    assert load_config(write_job(tmp_path, stages, "config.lr = 0.2\n", name="b.py")).config_notes[0].startswith(
        "config.lr = 0.2 is read by no stage")

"""Fuzzing the training config loader (insightface_g2d.training.config.load_config).

Job files in arcface_torch's format are generated with random keys (known ones, misspellings,
random names) and random values of every literal type (None, bools, ints, floats with nan/inf,
strings, lists, tuples, dicts), including random `masks`, `eval`, `teacher` dicts and random
`stages` lists; and random `--set KEY=VALUE` overrides. Every outcome must be a loaded config or
a ConfigError (never another exception or a hang), and a loaded config must be honest:
* every top-level key the job sets that is not merged (masks, eval, stages) comes back with the
  job's value; merged dicts hold the job's items;
* every known key has the type of its default in g2d_base.py (bool stays bool, an int key never
  holds a bool or a float, a float key holds a real number);
* unknown top-level keys never load;
* every resolved stage has a positive integer batch size, a positive lr and a known optimizer.
"""
import math
import runpy
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from insightface_g2d.errors import ConfigError
from insightface_g2d.training import config as config_mod
from insightface_g2d.training.config import load_config
from test_fuzz_support import Counter, fuzz, time_limit

BASE = dict(runpy.run_path(str(config_mod.packaged_base_path()))["config"])
MERGED = ("masks", "eval", "stages", "teacher")
STAGE_KEYS = ["name", "kind", "epochs", "steps", "batch_size", "optimizer", "lr", "betas", "momentum",
              "weight_decay", "warmup_epochs", "warmup_steps", "lr_power", "train", "losses", "masks",
              "teacher", "fp16", "grad_clip", "gradient_acc", "checkpoint_every", "preview_every", "head",
              "inputs", "network", "embedding_size", "margin_list", "scale"]
STAGE_NAMES = ["inpaint", "reform", "classify", "finetune", "arcface", "baseline", "x", "", "a b", "backbone"]


def source(value):
    """Python source for a literal (nan and inf spelled so they evaluate)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(source(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(source(v) + ", " for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{source(k)}: {source(v)}" for k, v in value.items()) + "}"
    return repr(value)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**4), st.integers(-2**70, 2**70), st.floats(),
                    st.text(max_size=8), st.sampled_from(["sgd", "adamw", "adam", "g2d_t", "r50", "{name}", "{",
                                                          "surgical", "normal", "model", "stage:baseline"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
    st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["prob", "styles", "positions", "enabled",
                                                                     "network", "checkpoint", "stage"])),
                    inner, max_size=3)), max_leaves=8)
IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
KEYS = st.one_of(st.sampled_from(sorted(BASE)), IDENT,
                 st.sampled_from(sorted(BASE)).map(lambda k: k[:-1] if len(k) > 2 else k + "s"))


@st.composite
def stage_entry(draw):
    entry = {"name": draw(st.sampled_from(STAGE_NAMES))}
    if draw(st.booleans()):
        entry["steps"] = draw(st.one_of(st.integers(-1, 50), VALUES))
    for key in draw(st.lists(st.sampled_from(STAGE_KEYS), max_size=4)):
        entry[key] = draw(st.one_of(VALUES, st.sampled_from([["{x}"], ["{"], ("a", "b"), {"rd1": "x"}])))
    return entry


@st.composite
def job(draw):
    items = {}
    for key in draw(st.lists(KEYS, max_size=5)):
        items[key] = draw(VALUES)
    if draw(st.booleans()):
        items["stages"] = draw(st.one_of(st.lists(stage_entry(), min_size=0, max_size=3), VALUES))
    if draw(st.booleans()):
        items["network"] = "g2d_t"
    return items


def typed_value(default):
    """A value of the default's type (so most near-valid jobs pass the type checks)."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(-2, 10**4)
    if isinstance(default, float):
        return st.one_of(st.floats(-1, 10), st.integers(0, 5))
    if isinstance(default, str):
        return st.sampled_from([default, "sgd", "adamw", "g2d_t", "x", ""])
    if isinstance(default, (list, tuple)):
        return st.lists(st.floats(0, 2), min_size=0, max_size=4).map(type(default))
    return VALUES


@st.composite
def near_valid_job(draw):
    """The demo's shape (tiny net, one short stage per kind) with one to three perturbations."""
    stages = [{"name": n, "steps": 2} for n in draw(st.lists(st.sampled_from(["inpaint", "reform", "classify"]),
                                                             min_size=1, max_size=3, unique=True))]
    items = {"network": "g2d_t", "embedding_size": 32, "teacher": {"network": "mbf", "checkpoint": None},
             "stages": stages}
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "top", "stage", "masks"]))
        if where == "top":
            key = draw(st.sampled_from(sorted(k for k in BASE if k not in MERGED)))
            items[key] = draw(st.one_of(typed_value(BASE[key]), typed_value(BASE[key]), VALUES))
        elif where == "stage":
            stage = draw(st.sampled_from(stages))
            key = draw(st.sampled_from(STAGE_KEYS))
            stage[key] = draw(st.one_of(VALUES, st.sampled_from([["{x}"], ["{"], ("a", "b"), {"rd1": "x"},
                                                                 (0.5, 0.9), 0.01, 8, "adam", ["encoder"]])))
        else:
            items["masks"] = {draw(st.sampled_from(["prob", "styles", "positions", "x"])): draw(VALUES)}
    return items


def write_job(folder, items):
    lines = ["from easydict import EasyDict as edict", "config = edict()"]
    lines += [f"config[{key!r}] = {source(value)}" for key, value in items.items()]
    path = Path(folder) / "job.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# real numbers by meaning, even where a base file spells the default as an int (arcface_torch's
# base.py writes `interclass_filtering_threshold = 0` and `warmup_epoch = 0`): int or float is right
REAL_VALUED = ("interclass_filtering_threshold", "warmup_epoch", "sample_rate", "lr", "momentum", "weight_decay")


def _type_matches(value, default, key=None):
    if default is None or value is None:
        return True
    if key == "resume":  # False/True or a checkpoint path (g2d_base.py)
        return isinstance(value, (bool, str))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if key in REAL_VALUED and isinstance(default, int):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_loaded(cfg, items):
    for key, value in items.items():
        assert key in BASE, f"unknown key {key!r} loaded"
        if key not in MERGED:
            assert _same(cfg[key], value) or key in ("config_path", "job_name"), f"config.{key} changed"
        elif key in ("masks", "eval") and isinstance(value, dict):
            assert all(_same(cfg[key][k], v) for k, v in value.items())
    for key, default in BASE.items():
        if key not in MERGED:
            assert _type_matches(cfg[key], default, key), f"config.{key} = {cfg[key]!r} kept against default {default!r}"
    for spec in cfg.stages:
        assert isinstance(spec["batch_size"], int) and not isinstance(spec["batch_size"], bool)
        assert spec["batch_size"] >= 1 and spec["lr"] > 0 and spec["optimizer"] in ("sgd", "adamw", "adam")
        assert (spec["steps"] is None) != (spec["epochs"] is None)


def outcome(fn):
    """("loaded", config) or ("refused", None) for a ConfigError; any other exception fails the test."""
    try:
        return "loaded", fn()
    except ConfigError:
        return "refused", None


def test_fuzz_config_job_files():
    counter = Counter("training.config.load_config (random job files)")

    @fuzz(300)
    @given(items=st.one_of(job(), near_valid_job(), near_valid_job()))
    def run(items):
        with time_limit(), tempfile.TemporaryDirectory() as tmp:
            path = write_job(tmp, items)
            kind, cfg = outcome(lambda: load_config(path))
        if kind == "loaded":
            check_loaded(cfg, items)
        counter.add(kind)

    run()
    counter.report()


OVERRIDE_KEYS = st.one_of(
    st.sampled_from(sorted(BASE)),
    st.sampled_from(["masks.prob", "masks.styles", "eval.enabled", "teacher.network", "stages.reform.steps",
                     "stages.reform.lr", "stages.inpaint.losses.l1", "stages.nope.lr", "stages.reform",
                     "stages", "masks.prob.x", "lr.x", "stages.classify.train", "stages.reform.betas"]),
    IDENT)


def test_fuzz_config_overrides():
    counter = Counter("training.config.load_config (random --set overrides)")
    base_job = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "demo.py"

    @fuzz(200)
    @given(sets=st.lists(st.one_of(
        st.sampled_from(sorted(k for k in BASE if k not in MERGED)).flatmap(
            lambda k: typed_value(BASE[k]).map(lambda v: f"{k}={source(v)}")),
        st.tuples(OVERRIDE_KEYS, VALUES.map(source)).map(lambda t: f"{t[0]}={t[1]}"),
        st.tuples(OVERRIDE_KEYS, st.text(max_size=10)).map(lambda t: f"{t[0]}={t[1]}"),
        st.text(max_size=12)), max_size=3))
    def run(sets):
        with time_limit():
            kind, cfg = outcome(lambda: load_config(base_job, sets))
        if kind == "loaded":
            check_loaded(cfg, {})
            last = {}
            for item in sets:
                key, _, text = item.partition("=")
                last[key.strip()] = text.strip()
            for key, text in last.items():
                if key in BASE and key not in MERGED:
                    assert _same(cfg[key], config_mod.parse_value(text)), f"--set {key}={text} not applied"
        counter.add(kind)

    run()
    counter.report()


# Inputs the fuzzers once found raising other exceptions than ConfigError, kept as regression tests.
def test_brace_in_a_train_entry_is_refused(tmp_path):
    path = write_job(tmp_path, {"network": "g2d_t", "stages": [{"name": "reform", "steps": 2, "train": ["{x}"]}]})
    with pytest.raises(ConfigError):
        load_config(path)


def test_betas_that_are_not_numbers_are_refused(tmp_path):
    path = write_job(tmp_path, {"network": "g2d_t", "stages": [{"name": "inpaint", "steps": 2, "betas": ("a", "b")}]})
    with pytest.raises(ConfigError):
        load_config(path)


def test_unhashable_stage_name_is_refused(tmp_path):
    path = write_job(tmp_path, {"network": "g2d_t", "stages": [{"name": ["reform"], "steps": 2}]})
    with pytest.raises(ConfigError):
        load_config(path)


def test_unhashable_stage_kind_is_refused(tmp_path):
    path = write_job(tmp_path, {"network": "g2d_t", "stages": [{"name": "reform", "kind": ["reform"], "steps": 2}]})
    with pytest.raises(ConfigError):
        load_config(path)


def test_margin_list_that_is_not_numbers_is_refused(tmp_path):
    path = write_job(tmp_path, {"network": "g2d_t", "margin_list": [None, None, None],
                                "stages": [{"name": "finetune", "steps": 2}]})
    with pytest.raises(ConfigError):
        load_config(path)


def test_override_of_a_stage_after_stages_was_replaced_is_refused():
    demo = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "demo.py"
    with pytest.raises(ConfigError):
        load_config(demo, ["stages=0", "stages.reform.steps=3"])

"""Training configs: Python files in arcface_torch's format, merged over `g2d_base.py` and validated.

A config is a Python module that defines `config = edict()` and sets plain values on it, exactly
like arcface_torch's `configs/base.py` + `configs/<job>.py`. `load_config(job)` executes the
`g2d_base.py` that sits in the job file's folder (or, when there is none, the packaged
`recipes/configs/g2d_base.py`), then the job file, and merges them:

- every top-level key of the job must exist in the base (a misspelt key is a ConfigError that
  suggests the closest known key);
- `masks` and `eval` are merged key by key; `teacher` is replaced as a whole (it names one kind
  of teacher);
- `stages` is the job's list (it decides which stages run, in order); an entry whose name matches
  a base stage is merged over that base entry, and setting `epochs` or `steps` in the job drops
  the other one from the base entry. Stage keys are then checked against the stage kind
  (`training.stages`).

Configs are code: loading one runs it. Only load config files you wrote or trust; this module
only ever executes the paths the user names (and the `g2d_base.py` beside them).
"""
import ast
import copy
import os
import runpy
from pathlib import Path

from easydict import EasyDict as edict

from ..errors import ConfigError, suggest
from .checks import MASK_KEYS, check_margin_list, check_masks, check_optimizer, is_real

BASE_NAME = "g2d_base.py"
EVAL_KEYS = ("enabled", "pairs", "num_pairs", "protocols", "models", "seed", "batch_size", "far", "nfolds")
MERGED_DICTS = ("masks", "eval")
# arcface_torch keys a config may carry (its job files set them) that g2d-train never reads: a job
# that sets one to a value other than g2d_base.py's gets a note at training start. (using_wandb is
# read: True is refused; num_image is compared with the dataset by the runner.)
ARCFACE_TORCH_ONLY = ("save_all_states", "sample_rate", "verbose", "dali", "dali_aug", "wandb_key", "suffix_run_name",
                      "wandb_entity", "wandb_project", "wandb_log_all", "save_artifacts", "wandb_resume", "val_targets")
# Keys whose base value is None but that still have a type.
_NULLABLE_TYPES = {
    "output": (str,), "num_classes": (int,), "num_image": (int,), "suffix_run_name": (str,),
    "checkpoint_every": (int,), "preview_every": (int,), "cpu_threads": (int,), "init": (str, dict),
}
# Real-valued keys: an int or a float whatever the base file writes. arcface_torch's base writes
# `interclass_filtering_threshold = 0` and `warmup_epoch = 0` as ints, so a g2d_base.py copied in
# that style must not turn `0.2` into a type error; count-like int keys (batch_size, seed, ...) stay
# strictly int.
REAL_KEYS = ("interclass_filtering_threshold", "warmup_epoch", "sample_rate", "lr", "momentum", "weight_decay")


def packaged_base_path():
    """The shipped `g2d_base.py`: inside the package in a wheel install (insightface_g2d/recipes/
    configs), else recipes/configs/ of the source tree next to the package (editable install)."""
    package = Path(__file__).resolve().parents[1]
    in_wheel = package / "recipes" / "configs" / BASE_NAME
    return in_wheel if in_wheel.is_file() else package.parent / "recipes" / "configs" / BASE_NAME


def execute_config_file(path):
    """Run a config file and return its `config` as a plain dict (deep-copied)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        namespace = runpy.run_path(str(path), run_name=f"g2d_config_{path.stem}")
    except SyntaxError as err:
        raise ConfigError(f"config file {str(path)!r} line {err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:  # a config is code; report what went wrong where
        raise ConfigError(f"config file {str(path)!r} failed to run: {type(err).__name__}: {err}") from None
    cfg = namespace.get("config")
    if not isinstance(cfg, dict):
        raise ConfigError(f"config file {str(path)!r} must define `config = edict()` (arcface_torch format)")
    try:
        return _plain(cfg)
    except Exception as err:  # a value deepcopy cannot copy (a module, a generator, ...)
        raise ConfigError(f"config file {str(path)!r}: a value cannot be copied ({type(err).__name__}: {err}); "
                          "configs hold plain values (numbers, strings, lists, dicts)") from None


def _plain(value):
    """edict/dict/list/tuple tree -> plain dicts/lists/tuples (deep copy)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return copy.deepcopy(value)


def find_base(job_path):
    """The g2d_base.py beside the job file, else the packaged one."""
    beside = Path(job_path).resolve().parent / BASE_NAME
    if beside.is_file():
        return beside
    packaged = packaged_base_path()
    if packaged.is_file():
        return packaged
    raise ConfigError(
        f"no {BASE_NAME} beside {str(job_path)!r} and no packaged default at {str(packaged)!r}: "
        f"copy recipes/configs/{BASE_NAME} next to your job file"
    )


def _merge_stage(base_stage, job_stage):
    merged = dict(base_stage)
    if "epochs" in job_stage or "steps" in job_stage:
        merged.pop("epochs", None)
        merged.pop("steps", None)
    for key, value in job_stage.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key in ("losses", "masks"):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def merge(base, job, where="job file"):
    """Job values over base values (see module doc). Raises ConfigError for unknown keys."""
    out = _plain(base)
    for key, value in job.items():
        if key not in base:
            raise ConfigError(f"unknown config key {key!r} in {where}{suggest(key, base)}")
        if key in MERGED_DICTS and isinstance(value, dict) and isinstance(base[key], dict):
            out[key] = {**base[key], **_plain(value)}
        elif key == "stages" and isinstance(value, (list, tuple)):
            base_stages = base.get("stages")
            base_stages = base_stages if isinstance(base_stages, (list, tuple)) else []
            # only string names are looked up: any other name (a list, ...) is refused by resolve_stage
            by_name = {s["name"]: s for s in base_stages if isinstance(s, dict) and isinstance(s.get("name"), str)}
            out[key] = [
                _merge_stage(by_name[s["name"]], _plain(s))
                if isinstance(s, dict) and isinstance(s.get("name"), str) and s["name"] in by_name
                else _plain(s)
                for s in value
            ]
        else:
            out[key] = _plain(value)
    return out


def parse_value(text):
    """A --set value: a Python literal when it parses as one, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):  # e.g. "{[1]: 2}": unhashable key
        return text


def apply_overrides(cfg, overrides):
    """Apply "key=value" strings. Dotted keys reach into dicts; `stages.NAME.key=value` into a stage."""
    for item in overrides or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set lr=0.01 or "
                              "--set stages.reform.steps=100")
        value = parse_value(text.strip())
        parts = key.split(".")
        if parts[0] not in cfg:
            raise ConfigError(f"--set {item!r}: unknown config key {parts[0]!r}{suggest(parts[0], cfg)}")
        if len(parts) == 1:
            cfg[key] = value
            continue
        if parts[0] == "stages":
            if len(parts) < 3:
                raise ConfigError(f"--set {item!r}: use stages.STAGE_NAME.KEY=VALUE")
            stages = cfg["stages"]
            if not isinstance(stages, (list, tuple)) or not all(isinstance(s, dict) for s in stages):
                raise ConfigError(f"--set {item!r}: config.stages is not a list of stages (it is {stages!r}, "
                                  "e.g. after an earlier --set stages=...); set the whole list instead")
            names = [s.get("name") for s in stages]
            if parts[1] not in names:
                raise ConfigError(f"--set {item!r}: no stage named {parts[1]!r}{suggest(parts[1], names)}; "
                                  f"stages: {', '.join(map(str, names))}")
            target = cfg["stages"][names.index(parts[1])]
            if parts[2] in ("epochs", "steps") and len(parts) == 3:
                target.pop("epochs", None)
                target.pop("steps", None)
            parts = parts[2:]
        else:
            target = cfg[parts[0]]
            parts = parts[1:]
            if not isinstance(target, dict):
                raise ConfigError(f"--set {item!r}: config.{key.split('.')[0]} is not a dict")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a dict")
        target[parts[-1]] = value
    return cfg


def _type_ok(value, default, key):
    if value is None:
        return default is None or key in _NULLABLE_TYPES or key in ("resume", "teacher")
    if default is None:
        types = _NULLABLE_TYPES.get(key)
        return types is None or (isinstance(value, types) and not isinstance(value, bool))
    if key == "resume":
        return isinstance(value, (bool, str))
    if key == "teacher":
        return isinstance(value, (dict, str))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float) or (key in REAL_KEYS and isinstance(default, int)):
        return is_real(value)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _check_subdict(cfg, key, allowed):
    value = cfg.get(key)
    if value is None:
        return
    if not isinstance(value, dict):
        raise ConfigError(f"config.{key} must be a dict, got {type(value).__name__}")
    for k in value:
        if k not in allowed:
            raise ConfigError(f"unknown key {k!r} in config.{key}{suggest(k, allowed)}; known: {', '.join(allowed)}")


def check_teacher(teacher, where="config.teacher"):
    """None, a string spec, or a dict whose keys the teacher types of `embedders.registry` declare
    (plus `geometry`); what each value means is checked when the teacher is built."""
    if teacher is None or isinstance(teacher, str):
        return
    if not isinstance(teacher, dict):
        raise ConfigError(f"{where} must be a dict like dict(network='r100', checkpoint='backbone.pth') or a "
                          f"string, got {teacher!r}")
    from ..embedders.factory import check_spec

    check_spec(teacher, where, extra=("geometry",))
    if teacher.get("geometry") is not None:
        from ..teachers.geometry import check_geometry

        check_geometry(teacher["geometry"], where=f"{where}.geometry")


def validate(cfg, base):
    """Check types and values of a merged config; resolve its stages. Returns a new edict (`cfg`
    is not changed)."""
    for key, default in base.items():
        if key in cfg and not _type_ok(cfg[key], default, key):
            want = type(default).__name__ if default is not None else "/".join(
                t.__name__ for t in _NULLABLE_TYPES.get(key, ()))
            raise ConfigError(f"config.{key} = {cfg[key]!r} has the wrong type (expected {want})")
    from ..backbones.registry import is_model, list_models

    if not is_model(cfg["network"]):
        raise ConfigError(f"config.network {cfg['network']!r} is not a known network"
                          f"{suggest(cfg['network'], list_models())}; known: {', '.join(list_models())}")
    check_optimizer(cfg["optimizer"], "config")
    check_margin_list(cfg["margin_list"])
    if cfg.get("amp_dtype") is not None:
        from .precision import check_amp_dtype

        check_amp_dtype(cfg["amp_dtype"])
    for key in ("batch_size", "embedding_size", "gradient_acc"):
        if cfg[key] < 1:
            raise ConfigError(f"config.{key} must be >= 1, got {cfg[key]!r}")
    if cfg.get("num_workers", 0) < 0:
        raise ConfigError("config.num_workers must be >= 0")
    if cfg.get("cpu_threads") is not None and cfg["cpu_threads"] < 1:
        raise ConfigError(f"config.cpu_threads must be >= 1 (or None for torch's default), got {cfg['cpu_threads']!r}")
    if cfg.get("using_wandb"):
        raise ConfigError("config.using_wandb = True: g2d-train does not log to Weights & Biases; set using_wandb "
                          "= False (the other wandb_* keys are accepted, for arcface_torch configs, and unused). "
                          "Scalars go to scalars.csv and TensorBoard in the output folder")
    _check_subdict(cfg, "masks", MASK_KEYS)
    check_masks(cfg["masks"])
    from .warm_start import check_init

    check_init(cfg.get("init"))
    check_teacher(cfg.get("teacher"))  # a string spec ("network:checkpoint", .onnx, cache dir) is checked when built
    _check_subdict(cfg, "eval", EVAL_KEYS)
    from .stages import resolve_stages  # imports the stage kinds, and torch with them: only when needed

    stages = resolve_stages(cfg)
    for stage in stages:
        check_teacher(stage["teacher"], where=f"stage {stage['name']!r} teacher")
    return edict({**cfg, "stages": stages})


def load_config(path, overrides=None):
    """Load job file `path` over its g2d_base.py, apply `--set` overrides, validate -> edict.

    The result also carries `config_path` (the job file) and `job_name` (its stem, used for the
    default output folder work_dirs/<job_name>, as arcface_torch does).
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist (example: recipes/configs/demo.py)")
    base_path = find_base(path)
    base = execute_config_file(base_path)
    for extra in ("config_path", "job_name"):
        base.setdefault(extra, None)
    job = {} if path.resolve() == base_path.resolve() else execute_config_file(path)
    cfg = merge(base, job, where=str(path))
    cfg = apply_overrides(cfg, overrides)
    cfg["config_path"] = str(path)
    cfg["job_name"] = path.stem
    set_here = list(job) + [str(o).partition("=")[0].strip() for o in overrides or ()]
    from .stages import unread_fallbacks

    # a value equal to g2d_base.py's changes nothing (ms1mv3_r100.py restates arcface_torch's lr): not reported
    unread = [k for k in unread_fallbacks(cfg, list(dict.fromkeys(set_here))) if cfg.get(k) != base.get(k)]
    cfg = validate(cfg, base)
    cfg["config_notes"] = [
        f"{', '.join(f'config.{k} = {cfg[k]!r}' for k in unread)} {'is' if len(unread) == 1 else 'are'} read by "
        "no stage (every stage sets its own value or has its kind's default); set it in the stages to change "
        "training"] if unread else []
    ignored = [k for k in dict.fromkeys(set_here) if k in ARCFACE_TORCH_ONLY and cfg.get(k) != base.get(k)]
    if ignored:
        cfg["config_notes"].append(
            f"config keys accepted for arcface_torch compatibility but not used by g2d-train: "
            f"{', '.join(f'{k} = {cfg[k]!r}' for k in ignored)}")
    return cfg

"""A config's stage entries -> resolved stage specs -> Stage objects.

The keys every stage has are `kinds.base.COMMON_DEFAULTS`; each kind adds its own (its settings
dataclass) and completes the spec (`Stage.resolve`). See kinds/base.py for what a stage entry may
hold and kinds/<kind>.py for each kind.
"""
import re

from ..errors import ConfigError, suggest
from .checks import MASK_KEYS, check_betas, check_masks, check_number, check_optimizer
from .kinds import STAGE_KINDS, fixed_module_names, known_keys, stage_kind

# keys a stage takes from the top-level config when it leaves them None (g2d_base.py holds their defaults)
FALLBACKS = ("batch_size", "optimizer", "lr", "momentum", "weight_decay", "fp16", "amp_dtype", "gradient_acc",
              "checkpoint_every", "preview_every", "teacher")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def resolve_stage(entry, cfg, index):
    """A config stage entry -> fully resolved spec dict (every key set). Raises ConfigError."""
    where = f"config.stages[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a dict like dict(name='mine', kind='...', steps=100), got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{where}: name must be a word of letters, digits, '_' or '-' (it names files), got {name!r}")
    where = f"stage {name!r}"
    if name in fixed_module_names():
        raise ConfigError(f"{where}: {name!r} is a module name; call the stage something else")
    kind_name = entry.get("kind") or name
    kind = stage_kind(kind_name, where)
    known = known_keys(kind)
    for key in entry:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}{suggest(key, known)}")
    spec = {**known, **{k: v for k, v in entry.items()}}
    if "epochs" in entry or "steps" in entry:
        for key in ("epochs", "steps"):
            if key not in entry:
                spec[key] = None
    spec["kind"] = kind_name
    for key in FALLBACKS:
        if spec.get(key) is None:
            spec[key] = cfg.get(key)
    if spec["epochs"] is None and spec["steps"] is None:
        length = kind.default_length(entry, cfg)
        if length is None:
            raise ConfigError(f"{where}: set its length, epochs=... or steps=...")
        spec.update(length)
    if spec["epochs"] is not None and spec["steps"] is not None:
        raise ConfigError(f"{where}: set epochs or steps, not both")
    check_number(spec, "epochs", where, 0, exclusive=True)
    check_number(spec, "steps", where, 1, integer=True)
    check_number(spec, "batch_size", where, 1, integer=True, allow_none=False)
    check_number(spec, "lr", where, 0, exclusive=True, allow_none=False)
    check_number(spec, "weight_decay", where, 0)
    check_number(spec, "momentum", where, 0)
    check_number(spec, "warmup_epochs", where, 0)
    check_number(spec, "warmup_steps", where, 0, integer=True)
    check_number(spec, "lr_power", where, 0)
    lr_mult = spec.get("lr_mult")
    if lr_mult is not None:
        if not isinstance(lr_mult, dict):
            raise ConfigError(f"{where}: lr_mult must be a dict {{module: factor}} like dict(encoder=0.1), got {lr_mult!r}")
        for module in lr_mult:
            check_number(lr_mult, module, f"{where}: lr_mult", 0, exclusive=True, allow_none=False)
    check_number(spec, "grad_clip", where, 0)
    check_number(spec, "gradient_acc", where, 1, integer=True, allow_none=False)
    check_number(spec, "checkpoint_every", where, 1, integer=True)
    check_number(spec, "preview_every", where, 1, integer=True)
    if spec["steps"] is not None:
        spec["steps"] = int(spec["steps"])
    spec["optimizer"] = check_optimizer(spec["optimizer"], where)
    spec["betas"] = check_betas(spec["betas"], where)
    from .precision import check_amp_dtype

    check_amp_dtype(spec["amp_dtype"], where=f"{where}: amp_dtype")
    spec["losses"] = _losses(spec.get("losses"), kind, where)
    spec["train"] = _train(spec, kind, where)
    masks = spec.get("masks") or {}
    if not isinstance(masks, dict):
        raise ConfigError(f"{where}: masks must be a dict, got {masks!r}")
    for key in masks:
        if key not in MASK_KEYS:
            raise ConfigError(f"{where}: unknown masks key {key!r}{suggest(key, MASK_KEYS)}")
    spec["masks"] = {**(cfg.get("masks") or {}), **masks}
    check_masks(spec["masks"], where=f"{where} masks")
    return kind.resolve(spec, cfg)


def _losses(losses, kind, where):
    """The stage's {term: weight}: its `losses` over the kind's default weights."""
    defaults = kind.default_losses()
    losses = losses or {}
    if not isinstance(losses, dict):
        raise ConfigError(f"{where}: losses must be a dict {{term: weight}}, got {losses!r}")
    for term in losses:
        if term not in defaults:
            raise ConfigError(f"{where}: unknown loss term {term!r}{suggest(term, defaults)}; "
                              f"{kind.kind} has: {', '.join(defaults)}")
        check_number(losses, term, f"{where}: losses", 0, allow_none=False)  # finite, >= 0
    out = {**defaults, **{k: float(v) for k, v in losses.items()}}
    if not any(out.values()):
        raise ConfigError(f"{where}: every loss weight is 0; nothing to train")
    return out


def _train(spec, kind, where):
    """The module names the stage trains: `train`, or the kind's default."""
    name, train = spec["name"], spec.get("train")
    if train is None:
        train = list(kind.trainable)
    elif isinstance(train, str):
        train = [train]
    elif isinstance(train, (list, tuple)):
        train = list(train)
    else:
        raise ConfigError(f"{where}: train must be a list of module names like ['reformer'], got {train!r}")
    # only the literal "{name}" is a placeholder: str.format would choke on any other brace
    train = [m.replace("{name}", name) if isinstance(m, str) else m for m in train]
    allowed = [m.replace("{name}", name) for m in kind.allowed_train]
    for module in train:
        if module not in allowed:
            raise ConfigError(f"{where}: cannot train module {module!r}{suggest(module, allowed)}; "
                              f"{kind.kind} may train: {', '.join(allowed)}")
    if not train:
        raise ConfigError(f"{where}: train is empty; nothing to train")
    for module in spec.get("lr_mult") or {}:
        if module not in train:
            raise ConfigError(f"{where}: lr_mult names {module!r}, which this stage does not train "
                              f"(train: {', '.join(train)})")
    return train


def resolve_stages(cfg):
    """The config's stage list, each entry resolved (see `resolve_stage`); names must be unique."""
    stages = cfg.get("stages")
    if not isinstance(stages, (list, tuple)) or not stages:
        raise ConfigError("config.stages must be a non-empty list of stage dicts")
    resolved = [resolve_stage(entry, cfg, i) for i, entry in enumerate(stages)]
    names = [s["name"] for s in resolved]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"two stages are named {n!r}; stage names must be unique (they name files)")
    return resolved


def unread_fallbacks(cfg, keys):
    """Those of the top-level `keys` no stage entry of `cfg` falls back to (each sets its own value,
    or its kind has its own default)."""
    read = set()
    stages = cfg.get("stages")
    if not isinstance(stages, (list, tuple)):
        return []  # an invalid stage list is reported by resolve_stages
    for entry in stages:
        kind_name = entry.get("kind") or entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(kind_name, str) or kind_name not in STAGE_KINDS:
            return []
        merged = {**known_keys(STAGE_KINDS[kind_name]), **entry}
        read.update(k for k in FALLBACKS if merged.get(k) is None)
    return [k for k in keys if k in FALLBACKS and k not in read]


def build_stage(spec, cfg):
    """A Stage object from a resolved spec."""
    return stage_kind(spec["kind"])(spec, cfg)

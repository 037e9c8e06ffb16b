"""Stages: what one greedy training step trains, with which losses, optimizer and length.

A stage kind is a subclass of `Stage` registered with `@register_stage_kind("name")`. It declares
its keys and their defaults, its loss terms and default weights, which modules it may train and
which it reads, and implements `step(batch, ctx)`. The generic loop (`training.loop`) knows
nothing about kinds: adding one means writing a subclass here or in another module, nothing else.

A stage entry in a config is a dict: `name` (unique; names the files `stage_<name>.pt`), `kind`
(defaults to the name) and any of the common keys below or the kind's own keys. Values left at
None fall back to the top-level config (batch_size, optimizer, lr, momentum, weight_decay, fp16,
gradient_acc, checkpoint_every, preview_every, teacher); `losses` and `masks` are merged over the
kind's defaults and `config.masks`.
"""
import math
import re

from easydict import EasyDict as edict

from ..errors import ConfigError

COMMON_DEFAULTS = dict(
    name=None,
    kind=None,
    epochs=None,           # length in passes over the dataset ...
    steps=None,            # ... or in optimizer steps (exactly one of the two)
    batch_size=None,       # per process
    optimizer=None,        # "sgd" | "adamw" | "adam"
    lr=None,
    lr_mult=None,          # {module: factor}: that module trains at lr * factor (e.g. encoder=0.1)
    betas=(0.9, 0.999),    # adam/adamw
    momentum=None,         # sgd
    weight_decay=None,
    warmup_epochs=0.0,     # linear warm-up, in epochs ...
    warmup_steps=None,     # ... or in steps (wins when set)
    lr_power=1.0,          # polynomial decay power after warm-up (1 = linear, as arcface_torch)
    train=None,            # module names trained by this stage (None: the kind's default)
    losses=None,           # {term: weight}, merged over the kind's defaults
    masks=None,            # merged over config.masks
    teacher=None,          # None: config.teacher
    fp16=None,             # mixed precision on CUDA (ignored on CPU)
    amp_dtype=None,        # "float16" (with loss scaling) or "bfloat16" when fp16 is on
    grad_clip=5.0,         # max total gradient norm, on every device (None or 0: off)
    gradient_acc=None,
    checkpoint_every=None,  # steps between checkpoints
    preview_every=None,     # steps between preview PNGs (stages that restore faces)
)
_FALLBACKS = ("batch_size", "optimizer", "lr", "momentum", "weight_decay", "fp16", "amp_dtype", "gradient_acc",
              "checkpoint_every", "preview_every", "teacher")
RESERVED_NAMES = ("backbone", "encoder", "reformer", "decoder", "discriminator", "head", "margin_head")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")

STAGE_KINDS = {}


def register_stage_kind(kind):
    """Class decorator: make a Stage subclass available to configs as `kind`."""
    def deco(cls):
        if kind in STAGE_KINDS:
            raise ValueError(f"stage kind {kind!r} registered twice")
        cls.kind = kind
        STAGE_KINDS[kind] = cls
        return cls
    return deco


class Stage:
    """One greedy training stage. Subclasses set the class attributes and implement `step`."""

    kind = None
    defaults = {}         # kind-specific keys (and overrides of COMMON_DEFAULTS)
    loss_weights = {}     # term -> default weight; also the list of allowed terms
    trainable = ()        # default `train`
    allowed_train = ()    # what `train` may contain ("{name}" stands for the stage name)
    uses = ()             # modules read by `step` without being trained
    restores_faces = False  # True: previews show the restored face and are written every preview_every
    input_key = "masked"    # which face of the batch the trained network sees

    def __init__(self, spec, cfg):
        self.spec = edict(spec)
        self.cfg = cfg
        self.name = self.spec.name

    # ---- configuration -------------------------------------------------------------------
    @classmethod
    def validate(cls, spec, cfg):
        """Kind-specific checks of a resolved spec; raise ConfigError."""

    def module_factories(self, num_classes):
        """{module name: zero-argument builder} of the modules this stage needs (built once per run)."""
        return {}

    def used_modules(self):
        return list(dict.fromkeys(list(self.uses) + list(self.spec.train)))

    def optimizer_groups(self):
        """{optimizer name: [module names]}; each optimizer steps once per training step."""
        return {"main": list(self.spec.train)}

    def optimizer_settings(self, group):
        s = self.spec
        return dict(optimizer=s.optimizer, lr=s.lr, betas=tuple(s.betas), momentum=s.momentum,
                    weight_decay=s.weight_decay)

    def teacher_use(self):
        """(needs teacher targets, needs a differentiable teacher)."""
        return False, False

    def mask_prob(self):
        return float(self.spec.masks.get("prob", 1.0))

    # ---- training --------------------------------------------------------------------------
    def check_batch(self, batch, ctx):
        """Checks of a batch on the host, before it moves to the device (there they would cost a
        device sync each step); raise DataError."""

    def step(self, batch, ctx):
        """One training step on `batch` (dict of device tensors); calls ctx.update(...) for each
        optimizer and returns {name: scalar tensor} of loss terms and metrics to log."""
        raise NotImplementedError

    def restore(self, masked, ctx):
        """N x 3 x 112 x 112 restored faces for previews, or None when there is no decoder."""
        if "decoder" not in ctx.models or "backbone" not in ctx.models:
            return None
        return ctx.models.get("decoder")(ctx.models.get("encoder")(masked))

    def exports(self, models):
        """{file name: state dict} written to the output folder when the stage finishes."""
        return {}


def stage_kind(name):
    if name not in STAGE_KINDS:
        raise ConfigError(f"unknown stage kind {name!r}{_suggest(name, STAGE_KINDS)}; known kinds: "
                          f"{', '.join(sorted(STAGE_KINDS))}")
    return STAGE_KINDS[name]


def _suggest(word, candidates):
    from ..errors import suggest

    return suggest(word, candidates)


def _number(spec, key, where, minimum=None, integer=False, allow_none=True, exclusive=False):
    value = spec.get(key)
    if value is None:
        if allow_none:
            return
        raise ConfigError(f"{where}: {key} must be set")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            ok = math.isfinite(value) and (not integer or float(value).is_integer())
        except OverflowError:  # an int past float's range: no sane length or rate
            ok = False
    if ok and minimum is not None:
        ok = value > minimum if exclusive else value >= minimum
    if not ok:
        what = "an integer" if integer else "a number"
        bound = "" if minimum is None else f" {'>' if exclusive else '>='} {minimum}"
        raise ConfigError(f"{where}: {key} must be {what}{bound}, got {value!r}")


def check_betas(betas, where, key="betas"):
    """Adam's (beta1, beta2): two numbers in [0, 1) -> tuple of floats; else ConfigError."""
    ok = isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in betas)
    if not ok:
        raise ConfigError(f"{where}: {key} must be two numbers in [0, 1) like (0.5, 0.9), got {betas!r}")
    return tuple(float(b) for b in betas)


def resolve_stage(entry, cfg, index):
    """A config stage entry -> fully resolved spec dict (every key set). Raises ConfigError."""
    from .config import OPTIMIZERS, check_masks, check_teacher

    where = f"config.stages[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a dict like dict(name='reform', epochs=10), got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{where}: name must be a word of letters, digits, '_' or '-' (it names files), got {name!r}")
    where = f"stage {name!r}"
    if name in RESERVED_NAMES:
        raise ConfigError(f"{where}: {name!r} is a module name; call the stage something else")
    kind_name = entry.get("kind") or name
    if not isinstance(kind_name, str) or kind_name not in STAGE_KINDS:
        raise ConfigError(f"{where}: unknown stage kind {kind_name!r}{_suggest(kind_name, STAGE_KINDS)}; "
                          f"known kinds: {', '.join(sorted(STAGE_KINDS))} (set kind= for a custom name)")
    kind = STAGE_KINDS[kind_name]
    known = {**COMMON_DEFAULTS, **kind.defaults}
    for key in entry:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(key, known)}")
    spec = {**known, **{k: v for k, v in entry.items()}}
    if "epochs" in entry or "steps" in entry:
        for key in ("epochs", "steps"):
            if key not in entry:
                spec[key] = None
    spec["kind"] = kind_name
    for key in _FALLBACKS:
        if spec.get(key) is None:
            spec[key] = cfg.get(key)
    if spec["epochs"] is None and spec["steps"] is None:
        if kind_name == "arcface":
            spec["epochs"] = cfg.get("num_epoch")
            if "warmup_epochs" not in entry:
                spec["warmup_epochs"] = cfg.get("warmup_epoch") or 0.0
        else:
            raise ConfigError(f"{where}: set its length, epochs=... or steps=...")
    if spec["epochs"] is not None and spec["steps"] is not None:
        raise ConfigError(f"{where}: set epochs or steps, not both")
    _number(spec, "epochs", where, 0, exclusive=True)
    _number(spec, "steps", where, 1, integer=True)
    _number(spec, "batch_size", where, 1, integer=True, allow_none=False)
    _number(spec, "lr", where, 0, exclusive=True, allow_none=False)
    _number(spec, "weight_decay", where, 0)
    _number(spec, "momentum", where, 0)
    _number(spec, "warmup_epochs", where, 0)
    _number(spec, "warmup_steps", where, 0, integer=True)
    _number(spec, "lr_power", where, 0)
    lr_mult = spec.get("lr_mult")
    if lr_mult is not None:
        if not isinstance(lr_mult, dict):
            raise ConfigError(f"{where}: lr_mult must be a dict {{module: factor}} like dict(encoder=0.1), got {lr_mult!r}")
        for module in lr_mult:
            _number(lr_mult, module, f"{where}: lr_mult", 0, exclusive=True, allow_none=False)
    _number(spec, "grad_clip", where, 0)
    _number(spec, "gradient_acc", where, 1, integer=True, allow_none=False)
    _number(spec, "checkpoint_every", where, 1, integer=True)
    _number(spec, "preview_every", where, 1, integer=True)
    if spec["steps"] is not None:
        spec["steps"] = int(spec["steps"])
    spec["optimizer"] = str(spec["optimizer"]).lower()
    if spec["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"{where}: optimizer {spec['optimizer']!r} unknown{_suggest(spec['optimizer'], OPTIMIZERS)}; "
                          f"use one of {', '.join(OPTIMIZERS)}")
    spec["betas"] = check_betas(spec["betas"], where)
    if spec.get("amp_dtype") is None:
        spec["amp_dtype"] = "float16"
    from .precision import check_amp_dtype

    check_amp_dtype(spec["amp_dtype"], where=f"{where}: amp_dtype")
    losses = spec.get("losses") or {}
    if not isinstance(losses, dict):
        raise ConfigError(f"{where}: losses must be a dict {{term: weight}}, got {losses!r}")
    for term, weight in losses.items():
        if term not in kind.loss_weights:
            raise ConfigError(f"{where}: unknown loss term {term!r}{_suggest(term, kind.loss_weights)}; "
                              f"{kind_name} has: {', '.join(kind.loss_weights)}")
        _number(losses, term, f"{where}: losses", 0, allow_none=False)  # finite, >= 0
    spec["losses"] = {**kind.loss_weights, **{k: float(v) for k, v in losses.items()}}
    if not any(spec["losses"].values()):
        raise ConfigError(f"{where}: every loss weight is 0; nothing to train")
    train = spec.get("train")
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
            raise ConfigError(f"{where}: cannot train module {module!r}{_suggest(module, allowed)}; "
                              f"{kind_name} may train: {', '.join(allowed)}")
    if not train:
        raise ConfigError(f"{where}: train is empty; nothing to train")
    for module in spec.get("lr_mult") or {}:
        if module not in train:
            raise ConfigError(f"{where}: lr_mult names {module!r}, which this stage does not train "
                              f"(train: {', '.join(train)})")
    spec["train"] = train
    masks = spec.get("masks") or {}
    if not isinstance(masks, dict):
        raise ConfigError(f"{where}: masks must be a dict, got {masks!r}")
    from .config import MASK_KEYS

    for key in masks:
        if key not in MASK_KEYS:
            raise ConfigError(f"{where}: unknown masks key {key!r}{_suggest(key, MASK_KEYS)}")
    spec["masks"] = {**(cfg.get("masks") or {}), **masks}
    check_masks(spec["masks"], where=f"{where} masks")
    check_teacher(spec["teacher"], where=f"{where} teacher")
    kind.validate(spec, cfg)
    return spec


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
        kind = STAGE_KINDS[kind_name]
        merged = {**COMMON_DEFAULTS, **kind.defaults, **entry}
        read.update(k for k in _FALLBACKS if merged.get(k) is None)
    return [k for k in keys if k in _FALLBACKS and k not in read]


def build_stage(spec, cfg):
    """A Stage object from a resolved spec."""
    return stage_kind(spec["kind"])(spec, cfg)


# The built-in kinds register themselves on import.
from . import stage_kinds  # noqa: E402,F401  (import for its side effect)

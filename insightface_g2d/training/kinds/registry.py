"""The stage-kind registry: kind name -> Stage subclass.

`kinds/__init__.py` lists the built-in kinds, one line each; code outside the package may add its
own with `register_stage_kind`. Everything that turns a config's stage entries into stages looks
kinds up here (`training.stages`).
"""
import dataclasses

from ...errors import ConfigError, suggest
from .base import COMMON_DEFAULTS, Stage

STAGE_KINDS = {}


def check_kind(cls):
    """TypeError when `cls` does not declare what a stage kind must (a programming error)."""
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise TypeError(f"{cls!r} is not a Stage subclass")
    if not isinstance(cls.kind, str) or not cls.kind:
        raise TypeError(f"{cls.__name__}.kind must be the kind's name (a non-empty string)")
    if not (dataclasses.is_dataclass(cls.settings) and isinstance(cls.settings, type)):
        raise TypeError(f"{cls.__name__}.settings must be a dataclass (subclass kinds.base.KindSettings)")
    missing = [f.name for f in dataclasses.fields(cls.settings) if f.default is dataclasses.MISSING]
    if missing:
        raise TypeError(f"{cls.__name__}.settings: give {', '.join(missing)} a default")
    for key in ("name", "kind"):
        if key in cls.default_values():
            raise TypeError(f"{cls.__name__}.settings must not set {key!r}")
    if not cls.default_losses():
        raise TypeError(f"{cls.__name__} declares no loss terms")
    return cls


def register_stage_kind(cls):
    """Make Stage subclass `cls` available to configs as `cls.kind`; returns `cls`."""
    check_kind(cls)
    if cls.kind in STAGE_KINDS:
        raise ValueError(f"stage kind {cls.kind!r} registered twice")
    STAGE_KINDS[cls.kind] = cls
    return cls


def stage_kind(name, where="stage"):
    """The Stage subclass registered as `name`; ConfigError (with did-you-mean) when none is."""
    if not isinstance(name, str) or name not in STAGE_KINDS:
        raise ConfigError(f"{where}: unknown stage kind {name!r}{suggest(name, STAGE_KINDS)}; known kinds: "
                          f"{', '.join(sorted(STAGE_KINDS))} (set kind= for a custom name)")
    return STAGE_KINDS[name]


def known_keys(cls):
    """{key: default} a stage entry of kind `cls` may set."""
    return {**COMMON_DEFAULTS, **cls.default_values()}


def module_parts():
    """{name: ModulePart} of every registered kind: the modules a ModelSet finds inside another."""
    parts = {}
    for cls in STAGE_KINDS.values():
        parts.update(cls.module_parts)
    return parts


def fixed_module_names():
    """The module names registered kinds use as they are (not made from a stage's name: "{name}"
    in allowed_train), with the parts and their owners. No stage may be called one of them: a kind
    that names its modules after its stage would collide with it."""
    names = set()
    for cls in STAGE_KINDS.values():
        names.update(m for m in cls.allowed_train if "{name}" not in m)
        for name, part in cls.module_parts.items():
            names.update((name, part.owner))
    return sorted(names)

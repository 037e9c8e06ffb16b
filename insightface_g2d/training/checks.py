"""Value checks shared by the config loader, the stage resolver and the stage kinds.

A leaf module: it imports nothing of the training package, so every layer can use it. Each check
raises ConfigError with what was wrong and what to write instead.
"""
import math

from ..errors import ConfigError, suggest

OPTIMIZERS = ("sgd", "adamw", "adam")
MASK_KEYS = ("prob", "styles", "positions", "degrade")


def check_number(spec, key, where, minimum=None, integer=False, allow_none=True, exclusive=False):
    """`spec[key]` is a finite real (an integer when `integer`) >= `minimum` (> when `exclusive`);
    None passes when `allow_none`."""
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


def is_betas(betas):
    return isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in betas)


def check_betas(betas, where, key="betas"):
    """Adam's (beta1, beta2): two numbers in [0, 1) -> tuple of floats; else ConfigError."""
    if not is_betas(betas):
        raise ConfigError(f"{where}: {key} must be two numbers in [0, 1) like (0.5, 0.9), got {betas!r}")
    return tuple(float(b) for b in betas)


def is_real(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_real(value):
    """A real number that float() can hold and that is not nan/inf."""
    try:
        return is_real(value) and math.isfinite(value)
    except OverflowError:  # an int too big for a float
        return False


def check_margin_list(margin_list, where="config.margin_list"):
    """Three finite real numbers (m1, m2, m3), as arcface_torch's CombinedMarginLoss takes."""
    ok = isinstance(margin_list, (list, tuple)) and len(margin_list) == 3 and all(
        finite_real(m) for m in margin_list)
    if not ok:
        raise ConfigError(f"{where} must be 3 numbers (m1, m2, m3) like (1.0, 0.5, 0.0) for ArcFace or "
                          f"(1.0, 0.0, 0.4) for CosFace, got {margin_list!r}")


def check_optimizer(name, where):
    """A known optimizer name (any case) -> its lower-case form."""
    name = str(name).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"{where}: optimizer {name!r} unknown{suggest(name, OPTIMIZERS)}; "
                          f"use one of {', '.join(OPTIMIZERS)}")
    return name


def check_masks(masks, where="config.masks"):
    """Validate a masks dict (prob in [0, 1], known styles and positions)."""
    prob = masks.get("prob", 1.0)
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
        raise ConfigError(f"{where}.prob must be a number in [0, 1], got {prob!r}")
    from ..masks.degrade import Degradation
    from ..masks.styles import MASK_POSITIONS, MASK_STYLES

    Degradation.from_config(masks.get("degrade"), where=f"{where}.degrade")

    for field, known in (("styles", MASK_STYLES), ("positions", MASK_POSITIONS)):
        names = masks.get(field)
        if names is None:
            continue
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
            default = "the default styles" if field == "styles" else "all"
            raise ConfigError(f"{where}.{field} must be a non-empty list (or None for {default}), got {names!r}")
        for n in names:
            if n not in known:
                raise ConfigError(f"{where}.{field}: unknown {field[:-1]} {n!r}{suggest(n, known)}; "
                                  f"known: {', '.join(known)}")

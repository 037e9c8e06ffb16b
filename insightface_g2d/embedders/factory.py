"""Specs -> face models, through the registry: the one place that reads a teacher or model spec.

A spec is a dict naming exactly one type by its key (registry.EMBEDDER_TYPES) plus that type's
options -- dict(network="r100", checkpoint="backbone.pth"), dict(onnx="m.onnx"), dict(dlib=True) --
or a string the first type accepts ("r100:backbone.pth", "m.onnx", "dlib", "stage:base", a cache
directory). `build_teacher` makes a teacher of a training run, `build_embedder` a model to evaluate.
"""
import os
from dataclasses import dataclass

from ..errors import ConfigError, suggest
from . import registry

CALLER_KEYS = ("device", "differentiable")  # also accepted in a build_teacher dict


@dataclass
class BuildContext:
    """What a type's from_spec gets besides its spec."""

    purpose: str = "evaluation"  # "teacher" (a training run's targets) or "evaluation"
    device: object = "cpu"
    differentiable: bool = False  # gradients must reach the faces (the inpainting identity loss)
    dataset: object = None        # the training set (a teacher cache is checked against it)
    run_network: object = None    # callable(stage name) -> nn.Module of this training run, or None

    @property
    def channels_last(self):
        """Teachers keep the default memory layout (training targets stay bit-for-bit the same);
        evaluation takes the faster channels-last path on CPU (TorchEmbedder's None)."""
        return False if self.purpose == "teacher" else None


def spec_keys(extra=()):
    """Every key a spec may hold: the type keys, then each type's options, then `extra`."""
    keys = list(registry.EMBEDDER_TYPES)
    for cls in registry.EMBEDDER_TYPES.values():
        keys += [k for k in cls.options if k not in keys]
    return tuple(keys) + tuple(k for k in extra if k not in keys)


def parse_spec(spec, what="model"):
    """A spec (string, path or dict) -> a new dict."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        for key, cls in registry.EMBEDDER_TYPES.items():
            parsed = cls.parse_string(key, text)
            if parsed is not None:
                return parsed
        forms = "; ".join(cls.string_form for cls in registry.EMBEDDER_TYPES.values())
        hint = f" ({text!r} is a file: for a PyTorch checkpoint write NETWORK:{text}, e.g. r50:{text})" \
            if os.path.isfile(text) else _did_you_mean(text)
        raise ConfigError(f"cannot understand {what} {text!r}{hint}; write one of: {forms}")
    if not isinstance(spec, dict):
        raise ConfigError(f"{what} must be a dict like dict(network='r100', checkpoint='backbone.pth') or a string, "
                          f"got {type(spec).__name__}")
    return dict(spec)


def _did_you_mean(text):
    """': no network or type 'g2dt' (did you mean 'g2d_t'?)' for a string whose first word (before
    ':') is close to a network name or a type key; '' otherwise (a path is not guessed at)."""
    word = text.partition(":")[0]
    if not word or "/" in word or "\\" in word or "." in word:
        return ""
    names = [name for key, cls in registry.EMBEDDER_TYPES.items()
             for name in (cls.spellings(key) if hasattr(cls, "spellings") else (key,))]
    close = suggest(word, names)
    return f": no network or model type {word!r}{close}" if close else ""


def with_option(spec, key, value, what="model"):
    """A copy of `spec` (parsed) with option `key` = `value` when the type it names takes that
    option and the spec does not set it already; otherwise unchanged."""
    spec = parse_spec(spec, what)
    if key in registry.EMBEDDER_TYPES[spec_type(spec, what)].options:
        spec.setdefault(key, value)
    return spec


def spec_type(spec, what="model"):
    """The one type key a spec dict sets (to a true value)."""
    chosen = [k for k in registry.EMBEDDER_TYPES if spec.get(k)]
    if len(chosen) != 1:
        raise ConfigError(f"{what} {spec} must name exactly one of {', '.join(registry.EMBEDDER_TYPES)}; "
                          f"found {chosen or 'none'}")
    return chosen[0]


def check_spec(spec, where="config.teacher", extra=()):
    """Validate the keys of a spec dict: every key known (did-you-mean otherwise), and the options
    of the type it names its own. Keys set to None are ignored (a base config's placeholders)."""
    known = spec_keys(extra)
    for k in spec:
        if k not in known:
            raise ConfigError(f"unknown key {k!r} in {where}{suggest(str(k), known)}; known: {', '.join(known)}")
    chosen = [k for k in registry.EMBEDDER_TYPES if spec.get(k)]
    if len(chosen) != 1:
        return
    own = (chosen[0],) + tuple(registry.EMBEDDER_TYPES[chosen[0]].options) + tuple(extra)
    for k, v in spec.items():
        if v is not None and k not in own and k not in registry.EMBEDDER_TYPES:
            raise ConfigError(f"key {k!r} in {where} does not apply to a {chosen[0]!r} model; its keys: {', '.join(own)}")


def check_files(spec, where, what="config.teacher"):
    """Fail early (before a training run starts) when a file the spec names is missing."""
    spec = {k: v for k, v in parse_spec(spec, what).items() if v is not None}
    key = spec_type({k: v for k, v in spec.items() if k in registry.EMBEDDER_TYPES}, what)
    options = {k: v for k, v in spec.items() if k != key}
    registry.EMBEDDER_TYPES[key].check_files(spec[key], options, where)


def build(spec, ctx, what="model"):
    """The object `spec` names, built by its type's from_spec."""
    spec = parse_spec(spec, what)
    check_spec(spec, what, extra=CALLER_KEYS)
    spec = {k: v for k, v in spec.items() if v is not None}
    if "device" in spec or "differentiable" in spec:
        ctx = BuildContext(ctx.purpose, spec.pop("device", ctx.device),
                           bool(spec.pop("differentiable", ctx.differentiable)), ctx.dataset, ctx.run_network)
    key = spec_type(spec, what)
    options = {k: v for k, v in spec.items() if k != key}
    return registry.EMBEDDER_TYPES[key].from_spec(spec[key], options, ctx)


def build_teacher(spec, dataset=None, device="cpu", differentiable=False, run_network=None):
    """A teacher: a FaceEmbedder, or a TeacherCache (checked against `dataset` when given)."""
    return build(spec, BuildContext("teacher", device, differentiable, dataset, run_network), "teacher")


def build_embedder(spec, device="cpu", run_network=None):
    """A FaceEmbedder to evaluate: a spec, an nn.Module, or a FaceEmbedder (returned as it is)."""
    import torch

    from .base import FaceEmbedder
    from .torch_network import TorchEmbedder

    if isinstance(spec, FaceEmbedder):
        return spec
    if isinstance(spec, torch.nn.Module):
        return TorchEmbedder(spec, device)
    embedder = build(spec, BuildContext("evaluation", device, run_network=run_network), "model spec")
    if not isinstance(embedder, FaceEmbedder):
        raise ConfigError(f"model spec {spec!r} is not a face model ({type(embedder).__name__}) and cannot embed faces")
    return embedder

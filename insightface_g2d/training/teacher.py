"""Teachers of a run, built from `config.teacher` (or a stage's own `teacher`) when a stage needs one.

Any spec of `embedders.factory` works; `teacher = dict(stage="baseline")` uses the network trained
by stage "baseline" of the same run, of a kind whose `serves_as_teacher` is set (the CPU demo
trains its own teacher this way).
"""
import copy

from ..errors import ConfigError
from .kinds import STAGE_KINDS, network_stage


def teaching_kinds():
    """Names of the stage kinds whose network may teach a later stage (`teacher=dict(stage=NAME)`)."""
    return sorted(name for name, cls in STAGE_KINDS.items() if cls.serves_as_teacher)


def describe(spec):
    if isinstance(spec, dict):
        return ", ".join(f"{k}={v!r}" for k, v in spec.items())
    return repr(spec)


def check_teacher_files(spec, stage_name):
    """Fail early (before any training) when a teacher file named in the config is missing."""
    from ..embedders.factory import check_files

    if spec is None:
        raise ConfigError(
            f"stage {stage_name!r} needs a teacher: set config.teacher = dict(network='r100', "
            "checkpoint='ms1mv3_arcface_r100_fp16/backbone.pth') (or onnx=..., cache=..., stage=...)")
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k != "geometry"}
    check_files(spec, f"stage {stage_name!r}")


class TeacherProvider:
    """Builds (once) and hands out the teachers stages ask for. A spec is built (checkpoint read,
    target geometry fitted) once: its other variant (differentiable or not: the inpainting identity
    loss wants both) is a deep copy of the same network, never the same module."""

    def __init__(self, models, stages, dataset, device):
        self.models, self.dataset, self.device = models, dataset, device
        self.stages = list(stages)
        self._built = {}  # (describe(spec), differentiable) -> teacher
        self._first = {}  # describe(spec) -> (unwrapped teacher, teacher) of its first build

    def get(self, spec, stage_name, differentiable=False, finished=()):
        check_teacher_files(spec, stage_name)
        key = (describe(spec), bool(differentiable))
        if key not in self._built:
            self._built[key] = self._build(spec, stage_name, bool(differentiable), finished)
        return self._built[key]

    def _build(self, spec, stage_name, differentiable, finished):
        from ..embedders.torch_network import TorchEmbedder
        from ..teachers.geometry import DEFAULT_GEOMETRY, apply_geometry

        key, geometry = describe(spec), DEFAULT_GEOMETRY
        if isinstance(spec, dict):
            spec = {k: v for k, v in spec.items() if v is not None}
            geometry = spec.pop("geometry", None) or DEFAULT_GEOMETRY
        first = self._first.get(key)
        if first is None:
            teacher = self._build_raw(spec, stage_name, differentiable, finished)
            wrapped = apply_geometry(teacher, geometry, self.dataset)
            self._first[key] = (teacher, wrapped)
            return wrapped
        built, built_wrapped = first
        if isinstance(built, TorchEmbedder):  # the same frozen network, with or without gradients
            teacher = copy.deepcopy(built)
            teacher.differentiable = differentiable
        else:  # other embedders decide themselves (most refuse to be differentiable)
            teacher = self._build_raw(spec, stage_name, differentiable, finished)
        # a live teacher's statistics cost a pass over the training sample: fitted once per teacher
        return apply_geometry(teacher, geometry, self.dataset, fitted=getattr(built_wrapped, "geometry", None))

    def _build_raw(self, spec, stage_name, differentiable, finished):
        """The teacher `spec` names, before its target geometry (embedders.factory.build_teacher)."""
        from ..embedders.factory import build_teacher

        def run_network(source):
            return self.stage_network(source, stage_name, finished)

        return build_teacher(spec, dataset=self.dataset, device=str(self.device), differentiable=differentiable,
                             run_network=run_network)

    def stage_network(self, source, stage_name, finished):
        """A copy of the network stage `source` of this run trained (for a "stage" teacher)."""
        other = network_stage(self.stages, source, teaching=True)
        if other is None:
            raise ConfigError(f"teacher stage {source!r} (stage {stage_name!r}) is not a stage of this config "
                              f"that can teach (kinds: {', '.join(teaching_kinds())})")
        if source not in finished:
            raise ConfigError(f"stage {stage_name!r} uses the network of stage {source!r} as teacher, but "
                              f"{source!r} has not been trained yet: run it first (drop --stage)")
        return copy.deepcopy(self.models.get(other.network().module))

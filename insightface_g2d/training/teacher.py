"""Teachers of a run, built from `config.teacher` (or a stage's own `teacher`) when a stage needs one.

Besides what `teachers.build_teacher` accepts, a config may name a stage of the same run:
`teacher = dict(stage="baseline")` uses the network trained by stage "baseline" (of a kind whose
`serves_as_teacher` is set)
(the CPU demo trains its own teacher this way).
"""
import copy
import os

from ..errors import CheckpointError, ConfigError
from .kinds import STAGE_KINDS, stage_kind


def teaching_kinds():
    """Names of the stage kinds whose network may teach a later stage (`teacher=dict(stage=NAME)`)."""
    return sorted(name for name, cls in STAGE_KINDS.items() if cls.serves_as_teacher)


def describe(spec):
    if isinstance(spec, dict):
        return ", ".join(f"{k}={v!r}" for k, v in spec.items())
    return repr(spec)


def check_teacher_files(spec, stage_name):
    """Fail early (before any training) when a teacher file named in the config is missing."""
    if spec is None:
        raise ConfigError(
            f"stage {stage_name!r} needs a teacher: set config.teacher = dict(network='r100', "
            "checkpoint='ms1mv3_arcface_r100_fp16/backbone.pth') (or onnx=..., cache=..., stage=...)")
    if isinstance(spec, str):
        return
    if "stage" in spec:
        return
    if spec.get("dlib"):
        from ..teachers.dlib_teacher import model_file

        model_file("dlib_face_recognition_resnet_model_v1.dat")  # ConfigError with the install line
    if spec.get("network") and not spec.get("checkpoint"):
        raise ConfigError(
            f"stage {stage_name!r}: config.teacher names network {spec['network']!r} but no checkpoint; set "
            "config.teacher.checkpoint to its arcface_torch backbone.pth (e.g. ms1mv3_arcface_r100_fp16/backbone.pth)")
    for key in ("checkpoint", "onnx"):
        path = spec.get(key)
        if path and not os.path.isfile(os.fspath(path)):
            raise CheckpointError(
                f"teacher {key} {os.fspath(path)!r} (stage {stage_name!r}) does not exist; download it or fix "
                "config.teacher")
    if spec.get("cache") and not os.path.isdir(os.fspath(spec["cache"])):
        raise CheckpointError(f"teacher cache {os.fspath(spec['cache'])!r} (stage {stage_name!r}) does not exist; "
                              "build it with g2d-cache build or fix config.teacher.cache")


class TeacherProvider:
    """Builds (once) and hands out the teachers stages ask for."""

    def __init__(self, models, stages, dataset, device):
        self.models, self.dataset, self.device = models, dataset, device
        self.stage_specs = {s.name: s.spec for s in stages}
        self._built = {}
        self._geometries = {}  # describe(spec) -> fitted TargetGeometry, shared by both copies of a teacher

    def get(self, spec, stage_name, differentiable=False, finished=()):
        check_teacher_files(spec, stage_name)
        key = (describe(spec), bool(differentiable))
        if key not in self._built:
            self._built[key] = self._build(spec, stage_name, differentiable, finished)
        return self._built[key]

    def _build(self, spec, stage_name, differentiable, finished):
        from ..teachers.geometry import DEFAULT_GEOMETRY, apply_geometry

        key, geometry = describe(spec), DEFAULT_GEOMETRY
        if isinstance(spec, dict):
            spec = dict(spec)
            geometry = spec.pop("geometry", None) or DEFAULT_GEOMETRY
        teacher = self._build_raw(spec, stage_name, differentiable, finished)
        # a live teacher's statistics cost a pass over the training sample: fit them once per teacher,
        # not again for its differentiable copy (the inpainting identity loss)
        wrapped = apply_geometry(teacher, geometry, self.dataset, fitted=self._geometries.get(key))
        if wrapped is not teacher:
            self._geometries[key] = wrapped.geometry
        return wrapped

    def _build_raw(self, spec, stage_name, differentiable, finished):
        if isinstance(spec, dict) and "stage" in spec:
            source = spec["stage"]
            other = self.stage_specs.get(source)
            if other is None or not stage_kind(other.get("kind")).serves_as_teacher:
                raise ConfigError(f"teacher stage {source!r} (stage {stage_name!r}) is not a stage of this config "
                                  f"that can teach (kinds: {', '.join(teaching_kinds())})")
            if source not in finished:
                raise ConfigError(f"stage {stage_name!r} uses the network of stage {source!r} as teacher, but "
                                  f"{source!r} has not been trained yet: run it first (drop --stage)")
            from ..teachers import TorchTeacher

            net = copy.deepcopy(self.models.get(source))
            return TorchTeacher.from_module(net, name=f"stage:{source}", device=self.device,
                                            differentiable=differentiable)
        from ..teachers import build_teacher

        spec = {k: v for k, v in spec.items() if v is not None} if isinstance(spec, dict) else spec
        return build_teacher(spec, dataset=self.dataset, device=str(self.device), differentiable=differentiable)

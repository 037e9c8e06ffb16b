"""Build a teacher from a config entry, and get a batch's teacher targets from any teacher."""
import os

from ..errors import ConfigError

_KINDS = ("network", "onnx", "cache", "dlib")
_OPTIONS = {"checkpoint", "num_features", "fp16", "device", "differentiable", "input_range", "workers"}


def _parse_string(spec):
    if os.path.isdir(spec):
        return {"cache": spec}
    if spec.lower().endswith(".onnx"):
        return {"onnx": spec}
    if spec == "dlib":
        return {"dlib": True}
    if ":" in spec:
        network, checkpoint = spec.split(":", 1)
        return {"network": network, "checkpoint": checkpoint}
    raise ConfigError(
        f"cannot tell what teacher {spec!r} is: use 'NETWORK:CHECKPOINT' (e.g. r100:ms1mv3_r100/backbone.pth), "
        "a .onnx file, 'dlib', or a teacher cache directory"
    )


def build_teacher(spec, dataset=None, device="cpu", differentiable=False):
    """Teacher from `spec`:
        dict(network="r100", checkpoint=".../backbone.pth"[, num_features, fp16]) -> TorchTeacher
        dict(onnx="model.onnx"[, input_range])                                 -> OnnxTeacher
        dict(cache="dir")                                                      -> TeacherCache
        dict(dlib=True)                                                        -> DlibFaceRecognizer
    or the strings "r100:.../backbone.pth", "model.onnx", "dir", "dlib". A cache is checked against
    `dataset` when given. `device`/`differentiable` may also be given inside the dict.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = _parse_string(os.fspath(spec))
    if not isinstance(spec, dict):
        raise ConfigError(f"teacher must be a dict or a string, got {type(spec).__name__}")
    spec = dict(spec)
    kinds = [k for k in _KINDS if spec.get(k)]
    if len(kinds) != 1:
        raise ConfigError(
            f"teacher {spec} must name exactly one of network (+ checkpoint), onnx, cache, dlib; found {kinds or 'none'}"
        )
    unknown = set(spec) - set(_KINDS) - _OPTIONS
    if unknown:
        raise ConfigError(f"unknown teacher keys {sorted(unknown)}; allowed: {sorted(set(_KINDS) | _OPTIONS)}")
    device = spec.pop("device", device)
    differentiable = spec.pop("differentiable", differentiable)
    kind = kinds[0]
    if kind == "network":
        from .torch_teacher import TorchTeacher

        return TorchTeacher(spec["network"], spec.get("checkpoint"), device=device,
                            num_features=spec.get("num_features"), differentiable=differentiable,
                            fp16=bool(spec.get("fp16", False)))
    if kind == "dlib":
        from .dlib_teacher import DlibFaceRecognizer

        return DlibFaceRecognizer(device=device, differentiable=differentiable, workers=spec.get("workers", 1))
    if kind == "onnx":
        from .onnx_teacher import OnnxTeacher

        return OnnxTeacher(spec["onnx"], device=device, input_range=spec.get("input_range", "auto"),
                           differentiable=differentiable)
    from .cache import TeacherCache

    if differentiable:
        raise ConfigError("a teacher cache holds fixed embeddings and cannot pass gradients; "
                          "use a PyTorch teacher (network + checkpoint) for the identity loss")
    return TeacherCache(spec["cache"], dataset=dataset)


def teacher_targets(teacher, batch):
    """The teacher embeddings of a MaskedPairDataset batch: N x D float32 on the batch's device.

    A TeacherCache looks them up by batch["index"] and batch["flipped"] (the clean face's mirror
    state, required: a wrong guess would silently pair faces with the other side's embedding);
    any other teacher embeds batch["clean"].
    """
    if hasattr(teacher, "lookup"):
        if "flipped" not in batch:
            from ..errors import DataError

            raise DataError(
                "the batch has no 'flipped' entry: a teacher cache needs to know which faces were mirrored "
                "(MaskedPairDataset items carry it); use a live teacher or a dataset that provides it"
            )
        device = batch["clean"].device if "clean" in batch else batch["index"].device
        return teacher.lookup(batch["index"], batch["flipped"], device=device)
    return teacher.embed(batch["clean"])

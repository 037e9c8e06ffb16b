"""Checks a run makes before it writes anything or takes a training step.

Each raises the project's own error with what is wrong and what to do; `run_training` calls them
in order before the output folder is touched, so a refused run leaves no files behind.
"""
import os

from ..errors import ConfigError, DataError


def check_eval(cfg, stages, evaluate=True):
    """config.eval, when the run will evaluate: pairs set and present, model specs resolvable."""
    ev = cfg.get("eval") or {}
    if not (evaluate and ev.get("enabled")):
        return
    source = ev.get("pairs")
    if not source:
        raise ConfigError("config.eval.enabled needs config.eval.pairs: a .bin file or a dataset spec of held-out "
                          "identities (e.g. 'synthetic:ids=100,per_id=8,offset=100000'); or pass --no-eval")
    text = str(source)
    if text.split(":", 1)[0].strip() == "synthetic":
        from ..data.factory import parse_synthetic_spec

        parse_synthetic_spec(text)
    elif not os.path.exists(os.path.expanduser(text)):
        raise DataError(f"config.eval.pairs {text!r} does not exist; fix the path or pass --no-eval")
    if not text.lower().endswith(".bin"):
        check_eval_pair_count(cfg, text)
    names = {s.name for s in stages}
    for label, spec in (ev.get("models") or {}).items():
        if isinstance(spec, str) and spec.startswith("stage:") and spec.split(":", 1)[1] not in names:
            raise ConfigError(f"config.eval.models[{label!r}] = {spec!r}: no such stage (stages: "
                              f"{', '.join(sorted(names))})")


def check_eval_pair_count(cfg, spec):
    """A dataset spec of config.eval.pairs holds the distinct pairs config.eval.num_pairs asks for."""
    from ..data.factory import build_face_dataset
    from ..evaluation.draw_pairs import check_pair_count
    from .evaluate import NUM_PAIRS_OPTION, dataset_labels, num_pairs

    dataset = build_face_dataset(spec, skip_bad=bool(cfg.get("skip_bad", False)))
    check_pair_count(dataset_labels(dataset), num_pairs(cfg.get("eval") or {}), NUM_PAIRS_OPTION)


def check_stale_stages(run, training):
    """CheckpointError, before anything trains, when a finished stage would be reused although a stage
    before it trains in this run or changed since (training.stage_inputs); it names the stage files to
    delete and the command that then trains them again."""
    import shlex

    from ..backbones.checkpoint import load_tensor_file
    from ..errors import CheckpointError
    from .checkpoint import checkpoint_checksum, checkpoint_inputs, stage_file
    from .stage_inputs import stale_stages

    finished = {}
    for stage in run.stages:
        path = run.path(stage_file(stage.name))
        if os.path.isfile(path):
            ckpt = load_tensor_file(path, hint=f"delete it to train stage {stage.name} again")
            finished[stage.name] = (checkpoint_checksum(ckpt), checkpoint_inputs(ckpt))
            del ckpt
    stale = stale_stages(run.stages, finished, [s.name for s in training])
    if not stale:
        return
    files = " ".join(shlex.quote(run.path(stage_file(name))) for name, _ in stale)
    if len(stale) == 1:
        (name, reason), = stale
        what, them = f"stage {name} ({stage_file(name)}) is stale: {reason}", "it"
    else:
        which = "; ".join(f"{name}: {reason}" for name, reason in stale)
        what, them = f"stages {', '.join(name for name, _ in stale)} are stale ({which})", "them"
    raise CheckpointError(f"{what}; reusing {them} would put modules of different trainings into model.pt. "
                          f"To train {them} again: rm {files} && {run.command}")


def check_stage_starts(run, training):
    """What each stage of `training` would check when it starts, checked before the first one
    trains: its batches fill at least one step (batch size vs the dataset), its precision works on
    the device, and every optimizer of it has parameters to train."""
    from .loop import stage_length
    from .precision import resolve_precision

    for stage in training:
        stage_length(stage, len(run.base), run.rt)
        resolve_precision(stage.spec.fp16, stage.spec.get("amp_dtype"), run.rt.device)
        for group, names in stage.optimizer_groups().items():
            if not run.models.trainable_by_design(names):
                raise ConfigError(f"stage {stage.name!r}: optimizer {group!r} has nothing to train (modules "
                                  f"{', '.join(names)} have no trainable parameters); train other modules")


def memory_bytes(device):
    """Total memory of `device` (RAM for the CPU), or None when unknown."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def head_bytes(stages, num_classes):
    """{module: (bytes, embedding size)} of the float32 classification heads the stages build
    (identities x embedding)."""
    out = {}
    for stage in stages:
        for module, dim in stage.heads().items():
            out[module] = (int(num_classes) * int(dim) * 4, int(dim))
    return out


def check_model_memory(stages, num_classes, device, rec):
    """ConfigError before building models whose classification heads alone exceed the memory."""
    heads = head_bytes(stages, num_classes)
    need = sum(b for b, _ in heads.values())
    total = memory_bytes(device)
    if total is None or need <= total:
        return
    parts = ", ".join(f"{name} {num_classes} x {dim}" for name, (_, dim) in heads.items())
    raise ConfigError(
        f"the classification heads of this config need {need / 2 ** 30:.1f} GiB for their weights alone ({parts}; "
        f"dataset {rec!r} has {num_classes} identities), more than the {total / 2 ** 30:.1f} GiB of {device} "
        "memory; use a dataset with fewer identities or a smaller embedding_size")


def teacher_stage(spec):
    """The stage a teacher spec names (dict(stage=NAME) or "stage:NAME"), or None for any other
    teacher (a spec the factory cannot read is reported when the teacher is built)."""
    from ..embedders.factory import parse_spec

    if spec is None:
        return None
    try:
        return parse_spec(spec, "config.teacher").get("stage")
    except ConfigError:
        return None


def check_teacher_sizes(run, stages):
    """Stages whose losses need teacher embeddings of a given size (Stage.teacher_embedding_size)
    are checked before the first step, not when the stage starts (a teacher trained by this run is
    checked from its stage's network; any other is built, once, as the stage would)."""
    from .kinds import network_stage

    for stage in stages:
        if stage.teacher_embedding_size() is None:
            continue
        source = teacher_stage(stage.spec.teacher)
        if source is not None:
            other = network_stage(run.stages, source, teaching=True)
            if other is not None:
                stage.check_teacher_size(other.network().embedding_size, origin=f" (stage {other.name!r})")
        else:
            run.teachers_for(stage)

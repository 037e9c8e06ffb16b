"""What happens when a stage resumes from a step checkpoint under a changed stage spec.

A checkpoint stores the resolved stage spec it was trained with. On resume the spec of the config
is compared with it key by key, and every difference is one of:

- harmless: `checkpoint_every`, `preview_every` (they never change the weights): accepted;
- applicable: the common optimizer hyper-parameters (`lr`, `momentum`, `weight_decay`, `betas`),
  what the loop reads from the spec each step (`losses`, `grad_clip`, `masks`, `teacher`) and the
  kind's own keys it declares as `Stage.resume_applicable` (read by its `step` or its
  `optimizer_settings`). Refused unless the run is started with `--apply-changes` (run_training(apply_changes=
  True)); then the new optimizer values are set in the restored optimizer and learning-rate
  schedule (the schedule keeps its position: lr = new base lr x the factor at the current step)
  and the others take effect from the next step;
- structural (batch size, length, optimizer kind, modules trained, network shapes, ...), and the
  run's `seed` (stored in the checkpoint: it orders the data and draws the masks): refused,
  always; restore the config or start the stage over with `--resume never`.

Without `--apply-changes` a resume is exact: the same weights as a run never interrupted.
"""
import json

from ..errors import CheckpointError
from .optim import base_lrs

HARMLESS = ("checkpoint_every", "preview_every")
OPTIMIZER_KEYS = ("lr", "momentum", "weight_decay", "betas")
READ_EACH_STEP = ("losses", "grad_clip", "masks", "teacher")


def applicable(stage):
    """The keys of `stage` that --apply-changes may change on resume: the common ones, then the
    kind's own (Stage.resume_applicable)."""
    return tuple(dict.fromkeys(OPTIMIZER_KEYS + READ_EACH_STEP + tuple(stage.resume_applicable)))


def _plain(spec):
    return json.loads(json.dumps(spec, sort_keys=True, default=str))


def spec_changes(stored_json, spec):
    """[(key, old, new)] of the top-level keys whose values differ between a checkpoint's stored spec
    (a JSON string) and `spec`; [] when the checkpoint stores none."""
    try:
        before = json.loads(stored_json or "{}")
    except (TypeError, ValueError):
        return []
    if not isinstance(before, dict) or not before:
        return []
    now = _plain(spec)
    return [(k, before.get(k), now.get(k)) for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]


def seed_changes(stored, seed):
    """[("seed", old, new)] when config.seed differs from the seed a checkpoint stored (None: not stored)."""
    return [] if stored is None or int(stored) == int(seed) else [("seed", int(stored), int(seed))]


def describe_changes(changes):
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)


def check_changes(changes, stage, source, apply_changes):
    """The changes to apply ([] for none); CheckpointError listing what cannot be resumed."""
    stage_name, keys = stage.name, applicable(stage)
    relevant = [c for c in changes if c[0] not in HARMLESS]
    if not relevant:
        return []
    structural = [c for c in relevant if c[0] not in keys]
    if structural:
        extra = [c for c in relevant if c[0] in keys]
        raise CheckpointError(
            f"stage {stage_name!r}: the config changed since {source} was written: {describe_changes(relevant)}. "
            f"{', '.join(k for k, _, _ in structural)} cannot change in the middle of a stage: restore the config, "
            f"or pass --resume never to start the stage over"
            + (f" (--apply-changes applies only {', '.join(keys)})" if extra else ""))
    if not apply_changes:
        raise CheckpointError(
            f"stage {stage_name!r}: the config changed since {source} was written: {describe_changes(relevant)}. "
            "Restore the config to resume exactly, pass --apply-changes to continue from the checkpoint with the new values "
            "(set in the restored optimizer and schedule), or --resume never to start the stage over")
    return relevant


def apply_to_trainer(trainer):
    """Set the stage's current optimizer settings in the restored optimizers and schedules."""
    for group, opt in trainer.optimizers.items():
        settings = trainer.stage.optimizer_settings(group)
        for pg in opt.param_groups:
            if "momentum" in pg and settings.get("momentum") is not None:
                pg["momentum"] = float(settings["momentum"])
            if "weight_decay" in pg:
                pg["weight_decay"] = float(settings.get("weight_decay") or 0.0)
            if "betas" in pg and settings.get("betas") is not None:
                pg["betas"] = tuple(float(b) for b in settings["betas"])
        trainer.schedulers[group].set_base_lrs(base_lrs(trainer.param_groups(group), float(settings["lr"])))
    return trainer.lr()

"""The one training loop every stage runs in.

`StageTrainer` owns what one stage trains with (modes, DDP wrappers, optimizers, schedule, AMP
scaler) and performs one step; `run_stage` feeds it batches in a resumable order and handles
logging, previews, checkpoints, stop requests and the numeric guard. Neither knows any stage kind:
a stage's `step(batch, ctx)` calls `ctx.update(optimizer_name, terms, weights)` for each of its
optimizers and returns what to log.
"""
import contextlib
import math
import os
import time

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import ConfigError, TrainingError
from ..losses.guards import check_finite
from .checkpoint import (build_checkpoint, checkpoint_modules, checkpoint_name, checkpoint_position,
                         checkpoint_progress, checkpoint_rng, checkpoint_seed, checkpoint_spec, checkpoint_trainer,
                         restore_rng, save_checkpoint_file)
from .distributed import barrier
from .logger import format_eta, get_logger
from .optim import WarmupPolyLR, build_optimizer, lr_groups
from .precision import resolve_precision, strip_module_autocast
from .sampler import ResumableSampler
from .step_checks import OverflowGuard, StepChecks, clip_to, grad_norm, nonfinite_names

class StepContext:
    """What a stage's `step` sees: modules, teacher, device and the update callback."""

    def __init__(self, trainer):
        self._t = trainer
        self.models = trainer.models
        self.device = trainer.rt.device
        self.spec = trainer.stage.spec

    def module(self, name):
        """The module to call for training: DDP-wrapped when trained in a distributed run."""
        return self._t.wrapped.get(name) or self.models.get(name)

    def raw(self, name):
        return self.models.get(name)

    @property
    def global_step(self):
        """Optimizer steps finished so far in this stage."""
        return self._t.global_step

    def update(self, group, terms, weights=None):
        """Backward of sum(weight * term) and, at an accumulation boundary, a step of optimizer `group`."""
        self._t.update(group, terms, weights)

    def targets(self, batch):
        """Teacher embeddings of the clean faces (N x D, no grad), from the teacher or its cache."""
        if self._t.teacher is None:
            raise ConfigError(f"stage {self._t.stage.name!r} needs a teacher: set config.teacher")
        from ..teachers import teacher_targets

        with torch.no_grad():
            return teacher_targets(self._t.teacher, batch).float()

    def teacher_geometry(self, embeddings):
        """`embeddings` through the teacher's target geometry (teachers.geometry; unchanged when the
        teacher has none): a student compared with the targets in the teacher's own space."""
        geometry = getattr(self._t.teacher, "geometry", None)
        return embeddings if geometry is None else geometry(embeddings)

    def teacher_grad(self, faces):
        """Teacher embeddings of `faces` with gradients flowing back to `faces`."""
        if self._t.grad_teacher is None:
            raise ConfigError(f"stage {self._t.stage.name!r} needs a differentiable (PyTorch) teacher")
        return self._t.grad_teacher.embed(faces).float()


class StageTrainer:
    """Optimizers, schedule and one training step for `stage` over `models` (a ModelSet)."""

    def __init__(self, stage, models, rt, total_steps, warmup_steps=0, teacher=None, grad_teacher=None,
                 precision=None):
        spec = stage.spec
        self.stage, self.models, self.rt = stage, models, rt
        self.teacher, self.grad_teacher = teacher, grad_teacher
        self.total_steps, self.acc = int(total_steps), int(spec.gradient_acc)
        # precision is decided here, for every module of the run (see training.precision)
        self.precision = precision or resolve_precision(spec.fp16, spec.get("amp_dtype"), rt.device)
        differentiable_teacher = getattr(grad_teacher, "model", None)  # gradients flow through it too
        if differentiable_teacher is not None:
            strip_module_autocast([differentiable_teacher])
        self.clip = float(spec.grad_clip) if spec.grad_clip else None  # the same on every device
        self.checks = StepChecks(rt)
        self.overflow = OverflowGuard()
        models.freeze_all()
        for name in spec.train:
            models.set_trainable(name)
        self.wrapped = {}
        if rt.distributed:
            for name in spec.train:
                module = models.get(name)
                if any(p.requires_grad for p in module.parameters()):
                    self.wrapped[name] = DDP(module, device_ids=[rt.device.index] if rt.cuda else None)
        self.groups = stage.optimizer_groups()
        # which parameters a group trains is fixed for the stage: collected once, not every step
        self.params = {group: models.parameters(names) for group, names in self.groups.items()}
        self.optimizers, self.schedulers = {}, {}
        for group in self.groups:
            settings = stage.optimizer_settings(group)
            opt = build_optimizer(self.param_groups(group), **settings)
            self.optimizers[group] = opt
            self.schedulers[group] = WarmupPolyLR(opt, warmup_steps, total_steps, spec.lr_power)
        self.scaler = self.precision.grad_scaler()
        self.global_step = 0
        self.micro = 0
        self.boundary = False
        self.stop_requested, self._stop = False, None
        self.ctx = StepContext(self)

    def param_groups(self, group):
        """Optimizer `group`'s param groups at the stage's current lr (lr_mult applied)."""
        return lr_groups(self.models, self.groups[group], self.stage.optimizer_settings(group)["lr"],
                         self.stage.spec.get("lr_mult"))

    # ---- one step ---------------------------------------------------------------------------
    def autocast(self):
        return self.precision.autocast()

    def no_sync(self):
        """Inside an accumulation window (not its last micro-batch) DDP must not all-reduce gradients."""
        stack = contextlib.ExitStack()
        if not self.boundary:
            for module in self.wrapped.values():
                stack.enter_context(module.no_sync())
        return stack

    def update(self, group, terms, weights=None):
        weights = weights or {}
        self.checks.add_terms(group, terms)  # checked once per optimizer step, in _finish_step
        total = sum(float(weights.get(k, 1.0)) * v.float() for k, v in terms.items() if float(weights.get(k, 1.0)))
        if not torch.is_tensor(total) or not total.requires_grad:
            raise TrainingError(f"stage {self.stage.name!r}: optimizer {group!r} got a loss without gradient; "
                                "are its modules frozen?")
        opt = self.optimizers[group]
        with torch.autocast(device_type=self.rt.device.type, enabled=False):
            self.scaler.scale(total / self.acc).backward()
        if self.boundary:
            self.scaler.unscale_(opt)  # a no-op without loss scaling
            norm = grad_norm(self.params[group])
            self.checks.add_grads(group, norm)
            if self.clip and norm is not None:
                clip_to(self.params[group], self.clip, norm)
            self.scaler.step(opt)  # skips the step when float16 gradients overflowed

    def _finish_step(self):
        """The step's numeric guard and stop request: one host sync, one all-reduce."""
        found = self.checks.resolve(self._stop is not None and self._stop.requested)
        self.stop_requested = found.stop
        where, step = f"stage {self.stage.name!r}", self.global_step + 1
        for (_, group, terms), here in found.bad("terms"):
            if not here:
                raise TrainingError(f"{where}: another process saw a non-finite loss term at step {step}")
            try:
                check_finite(terms, step=step)
            except TrainingError as err:
                raise TrainingError(f"{where}: {err}") from None
        bad_grads = found.bad("grads")
        if bad_grads and not self.precision.scaled:
            (_, group, _), here = bad_grads[0]
            if not here:
                raise TrainingError(f"{where}: another process saw a non-finite gradient at step {step} "
                                    f"(optimizer {group!r})")
            bad = nonfinite_names(self.models.named_parameters(self.groups[group]))
            raise TrainingError(
                f"{where}: non-finite gradient at step {step} in {', '.join(bad[:3]) or group}"
                f"{' and more' if len(bad) > 3 else ''} (optimizer {group!r}). Lower the learning rate or check the "
                "inputs; then resume from the last checkpoint."
            )
        if self.precision.scaled:
            overflowed = bool(bad_grads)
            self.overflow.update(overflowed, where, self.scaler.get_scale() if overflowed else None)

    def train_step(self, batch, stop=None):
        """One micro-batch; an optimizer step every `gradient_acc` micro-batches. Returns the logs.

        `stop`: an object whose `requested` says this process was asked to stop (GracefulStop);
        after an optimizer step `stop_requested` says whether any process was (agreed in the step's
        one all-reduce)."""
        self.boundary = (self.micro + 1) % self.acc == 0
        self.stop_requested, self._stop = False, stop
        with self.no_sync(), self.autocast():
            logs = self.stage.step(batch, self.ctx)
        self.micro += 1
        if self.boundary:
            self.scaler.update()
            self._finish_step()
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)  # after the guard, which names bad gradients
            for sched in self.schedulers.values():
                sched.step()
            self.global_step += 1
        return logs

    def lr(self):
        return {g: s.get_last_lr()[0] for g, s in self.schedulers.items()}

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self):
        return {
            "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
            "schedulers": {g: s.state_dict() for g, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "global_step": self.global_step,
            "micro": self.micro,
        }

    def load_state_dict(self, state):
        for g, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][g])
        for g, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][g])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.global_step = int(state["global_step"])
        self.micro = int(state["micro"])


# Batch entries that only index host-side data (the teacher cache): they stay on the host, so
# reading them never waits for the device.
HOST_KEYS = ("index", "flipped")


def to_device(batch, device):
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in HOST_KEYS else v)
            for k, v in batch.items()}


def stage_length(stage, dataset_len, rt):
    """(total optimizer steps, warm-up steps, batches per epoch per rank) of a stage."""
    spec = stage.spec
    per_rank = math.ceil(dataset_len / rt.world_size)
    batches = per_rank // int(spec.batch_size)
    acc = int(spec.gradient_acc)
    if batches < 1:
        raise ConfigError(
            f"stage {stage.name!r}: {dataset_len} images over {rt.world_size} process(es) do not fill one batch of "
            f"{spec.batch_size}; lower batch_size or use more data"
        )
    per_epoch = batches / acc
    total = spec.steps if spec.steps is not None else max(1, round(float(spec.epochs) * per_epoch))
    warmup = spec.warmup_steps if spec.warmup_steps is not None else round(float(spec.warmup_epochs) * per_epoch)
    return int(total), int(min(warmup, total)), batches


class StageRun:
    """Runs one stage over a dataset: resumable data order, logging, checkpoints, stop, guard."""

    def __init__(self, stage, models, dataset, rt, output, *, seed=0, num_workers=0, frequent=10,
                 teacher=None, grad_teacher=None, stop=None, scalars=None, preview_batch=None, on_step=None,
                 restorer=None, dataset_record=None):
        self.stage, self.models, self.dataset, self.rt = stage, models, dataset, rt
        self.dataset_record = dataset_record  # stored in every checkpoint (training.integrity.dataset_record)
        self.output, self.seed, self.num_workers = output, int(seed), int(num_workers)
        self.frequent = max(1, int(frequent or 10))
        self.stop, self.scalars, self.preview, self.on_step = stop, scalars, preview_batch, on_step
        self.restorer = restorer  # the stage whose restore() fills the previews' restored row (kinds.face_restorer)
        self.log = get_logger()
        self.total_steps, warmup, self.batches_per_epoch = stage_length(stage, len(dataset), rt)
        self.trainer = StageTrainer(stage, models, rt, self.total_steps, warmup, teacher, grad_teacher)
        self.sampler = ResumableSampler(len(dataset), rt.world_size, rt.rank, seed=self.seed)
        self.position = {"epoch": 0, "batch_in_epoch": 0}
        self.last_checkpoint = None

    @property
    def checkpoint_path(self):
        return os.path.join(self.output, checkpoint_name(self.rt.rank))

    def resume_from(self, ckpt, source, apply_changes=False):
        """Continue from a step checkpoint of this stage (the caller checked that it is this stage's:
        training.runner; same config, same number of processes; a changed spec is refused or, with
        `apply_changes`, applied: see training.resume_changes)."""
        from ..errors import CheckpointError
        from .resume_changes import apply_to_trainer, check_changes, describe_changes, seed_changes, spec_changes

        progress = checkpoint_progress(ckpt)
        if progress["world_size"] != self.rt.world_size:
            raise CheckpointError(
                f"{source} was written by {progress['world_size']} process(es); resume with the same number "
                f"(now {self.rt.world_size}) or pass --resume never to start the stage over")
        changes = spec_changes(checkpoint_spec(ckpt), self.stage.spec) + seed_changes(checkpoint_seed(ckpt), self.seed)
        changes = check_changes(changes, self.stage, source, apply_changes)
        if progress["total_steps"] != self.total_steps:
            raise CheckpointError(
                f"{source} was written for {progress['total_steps']} steps of stage {self.stage.name!r} but the "
                f"config now gives {self.total_steps}; restore the config or pass --resume never")
        self.models.load_state_dicts(checkpoint_modules(ckpt), source=source)
        self.trainer.load_state_dict(checkpoint_trainer(ckpt))
        if changes:
            lrs = apply_to_trainer(self.trainer)
            self.log.warning(f"stage {self.stage.name}: applying changed settings on resume: "
                             f"{describe_changes(changes)} (learning rate now "
                             f"{', '.join(f'{g} {v:.3g}' for g, v in lrs.items())}); from here on the run differs "
                             "from an uninterrupted one")
        restore_rng(checkpoint_rng(ckpt), self.rt.device)
        self.position = checkpoint_position(ckpt)
        self.last_checkpoint = source
        self.log.info(f"stage {self.stage.name}: resumed from {source} at step {self.trainer.global_step}/"
                      f"{self.total_steps} (epoch {self.position['epoch']}, batch {self.position['batch_in_epoch']})")

    def checkpoint(self, finished=False, inputs=None):
        """The stage's checkpoint now (modules, trainer, data position, RNG, dataset record, seed;
        `inputs`: the earlier stage files it started from, for the stage file)."""
        tr, rt = self.trainer, self.rt
        progress = dict(global_step=tr.global_step, total_steps=tr.total_steps, world_size=rt.world_size,
                        rank=rt.rank, device=rt.device)
        return build_checkpoint(self.stage, self.models.state_dicts(), tr.state_dict(), self.position, progress,
                                finished=finished, dataset=self.dataset_record, seed=self.seed, inputs=inputs)

    def save_checkpoint(self):
        """Every rank writes its own file at the same step; the barrier makes the set complete
        before any rank goes on (a kill after it finds every rank's file at this step)."""
        ckpt = self.checkpoint()
        self._guarded(save_checkpoint_file, ckpt, self.checkpoint_path,
                      f"stage {self.stage.name!r} at step {self.trainer.global_step}")
        barrier(self.rt)
        self.last_checkpoint = self.checkpoint_path

    def _loader(self, epoch, start_batch):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        bs = int(self.stage.spec.batch_size)
        self.sampler.set_epoch(epoch, start=start_batch * bs)
        return DataLoader(
            self.dataset, batch_size=bs, sampler=self.sampler, num_workers=self.num_workers, drop_last=True,
            pin_memory=self.rt.cuda, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch),
        )

    def write_preview(self, tag):
        """previews/<stage>_<tag>.png from the preview batch (rank 0 only)."""
        if self.preview is None or not self.rt.is_main:
            return
        from .preview import write_preview

        path = os.path.join(self.output, "previews", f"{self.stage.name}_{tag}.png")
        write_preview(path, self.restorer, self.preview, self.trainer.ctx, within=self.output)

    def _guarded(self, fn, *args):
        try:
            return fn(*args)
        except TrainingError as err:
            where = (f"the last good checkpoint {self.last_checkpoint} is intact" if self.last_checkpoint
                     else "no checkpoint of this stage was written yet")
            raise TrainingError(f"{err} ({where})") from None

    def run(self):
        """Train to the end ("finished") or until a stop request ("stopped", checkpoint saved)."""
        spec, tr, rt = self.stage.spec, self.trainer, self.rt
        images_per_step = int(spec.batch_size) * rt.world_size * tr.acc
        ckpt_every = int(spec.checkpoint_every or 0)
        preview_every = int(spec.preview_every or 0) if self.stage.restores_faces else 0
        bar = tqdm(total=self.total_steps, initial=tr.global_step, desc=f"stage {self.stage.name}",
                   disable=not rt.is_main, leave=False, dynamic_ncols=True)
        t_start, step_start = time.time(), tr.global_step
        t_last, step_last = t_start, tr.global_step
        try:
            while tr.global_step < self.total_steps:
                epoch, start = self.position["epoch"], self.position["batch_in_epoch"]
                for batch in self._loader(epoch, start):
                    self.stage.check_batch(batch, tr.ctx)  # on the host copy: no device sync
                    logs = self._guarded(tr.train_step, to_device(batch, rt.device), self.stop)
                    self.position["batch_in_epoch"] += 1
                    if not tr.boundary:
                        continue
                    step = tr.global_step
                    bar.update(1)
                    if step % self.frequent == 0 or step == self.total_steps:
                        now = time.time()
                        speed = images_per_step * (step - step_last) / max(now - t_last, 1e-9)
                        eta = (now - t_start) / max(step - step_start, 1) * (self.total_steps - step)
                        self._log_step(step, logs, speed, eta)
                        t_last, step_last = now, step
                    if preview_every and step % preview_every == 0:
                        self.write_preview(f"step{step:07d}")
                    periodic = ckpt_every and step % ckpt_every == 0 and step < self.total_steps
                    if periodic:
                        self.save_checkpoint()
                    if self.on_step is not None:
                        self.on_step(self, step)
                    # agreed in the step's all-reduce; a single process also sees a request made just now
                    stop_now = tr.stop_requested or (not rt.distributed and self.stop is not None
                                                     and self.stop.requested)
                    if stop_now:
                        if not periodic:
                            self.save_checkpoint()
                        self.log.warning(f"stage {self.stage.name}: stopped at step {step}/{self.total_steps}; "
                                         f"checkpoint {self.checkpoint_path}")
                        return "stopped"
                    if step >= self.total_steps:
                        break
                else:
                    self.position = {"epoch": epoch + 1, "batch_in_epoch": 0}
        finally:
            bar.close()
        return "finished"

    def _log_step(self, step, logs, speed, eta):
        logs, values = step_scalars(self.trainer, logs, speed)
        if self.scalars is not None:
            self.scalars.write(self.stage.name, step, values)
        self.log.info(step_line(self.stage.name, step, self.total_steps, self.position["epoch"], logs, values, eta))


def step_scalars(trainer, logs, speed):
    """(the step's logs as floats, every scalar to record): the logs, the loss scale and skipped
    steps under float16 loss scaling, each optimizer's learning rate ("lr" for the stage's primary
    group, "lr_<group>" for the others) and the images per second."""
    tensors = [k for k, v in logs.items() if torch.is_tensor(v)]
    read = []
    if tensors:  # one transfer for every logged tensor
        device = logs[tensors[0]].device
        read = torch.stack([logs[k].detach().float().reshape(()).to(device) for k in tensors]).tolist()
    logs = {k: (read[tensors.index(k)] if k in tensors else float(v)) for k, v in logs.items()}
    values = dict(logs)
    if trainer.precision.scaled:
        values["loss_scale"] = trainer.scaler.get_scale()
        values["overflow_steps"] = trainer.overflow.total
    for group, lr in trainer.lr().items():
        values["lr" if group == trainer.stage.primary_group else f"lr_{group}"] = lr
    values["images_per_s"] = speed
    return logs, values


def step_line(stage_name, step, total_steps, epoch, logs, values, eta):
    """The log line of a step from step_scalars' output."""
    terms = " ".join(f"{k} {v:.4f}" for k, v in logs.items())
    lrs = " ".join(f"{k} {v:.2e}" for k, v in values.items() if k.startswith("lr"))
    scale = (f" | loss scale {values['loss_scale']:g} ({values['overflow_steps']} skipped)"
             if "loss_scale" in values else "")
    return (f"[{stage_name}] step {step}/{total_steps} epoch {epoch} | {terms} | "
            f"{lrs}{scale} | {values['images_per_s']:.1f} img/s | ETA {format_eta(eta)}")

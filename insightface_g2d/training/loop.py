"""The one training loop every stage runs in.

`StageTrainer` owns what one stage trains with (modes, DDP wrappers, optimizers, schedule, AMP
scaler) and performs one step; `run_stage` feeds it batches in a resumable order and handles
logging, previews, checkpoints, stop requests and the numeric guard. Neither knows any stage kind:
a stage's `step(batch, ctx)` calls `ctx.update(optimizer_name, terms, weights)` for each of its
optimizers and returns what to log.
"""
import contextlib
import json
import math
import os
import time

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import ConfigError, TrainingError
from .checkpoint import capture_rng, restore_rng
from .distributed import any_true
from .logger import format_eta, get_logger
from .optim import WarmupPolyLR, build_optimizer, lr_groups
from .sampler import ResumableSampler

CHECKPOINT_FORMAT = "g2d-train-checkpoint"


def checkpoint_name(rank):
    """Per-rank step checkpoint, named like arcface_torch's (each rank keeps its own RNG states)."""
    return f"checkpoint_gpu_{rank}.pt"


def stage_file(name):
    return f"stage_{name}.pt"


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

    def teacher_grad(self, faces):
        """Teacher embeddings of `faces` with gradients flowing back to `faces`."""
        if self._t.grad_teacher is None:
            raise ConfigError(f"stage {self._t.stage.name!r} needs a differentiable (PyTorch) teacher")
        return self._t.grad_teacher.embed(faces).float()


class StageTrainer:
    """Optimizers, schedule and one training step for `stage` over `models` (a ModelSet)."""

    def __init__(self, stage, models, rt, total_steps, warmup_steps=0, teacher=None, grad_teacher=None):
        spec = stage.spec
        self.stage, self.models, self.rt = stage, models, rt
        self.teacher, self.grad_teacher = teacher, grad_teacher
        self.total_steps, self.acc = int(total_steps), int(spec.gradient_acc)
        self.amp = rt.cuda and bool(spec.fp16)
        self.clip = float(spec.grad_clip) if (rt.cuda and spec.grad_clip) else None
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
        self.named_params = {group: list(models.named_parameters(names)) for group, names in self.groups.items()}
        self.optimizers, self.schedulers = {}, {}
        for group in self.groups:
            settings = stage.optimizer_settings(group)
            opt = build_optimizer(lr_groups(models, self.groups[group], settings["lr"], spec.get("lr_mult")),
                                  **settings)
            self.optimizers[group] = opt
            self.schedulers[group] = WarmupPolyLR(opt, warmup_steps, total_steps, spec.lr_power)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.global_step = 0
        self.micro = 0
        self.boundary = False
        self.ctx = StepContext(self)

    # ---- one step ---------------------------------------------------------------------------
    def autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _check_terms(self, terms):
        from ..losses import check_finite

        err = None
        try:
            check_finite(terms, step=self.global_step + 1)
        except TrainingError as e:
            err = e
        if self.rt.distributed and any_true(err is not None, self.rt) and err is None:
            err = TrainingError(f"another process saw a non-finite loss term at step {self.global_step + 1}")
        if err is not None:
            raise TrainingError(f"stage {self.stage.name!r}: {err}")

    def _check_grads(self, group):
        named = [(n, p) for n, p in self.named_params[group] if p.grad is not None]
        if not named:
            return
        ok = torch.stack([torch.isfinite(p.grad).all() for _, p in named]).tolist()
        bad = [n for (n, _), good in zip(named, ok) if not good]
        if bad:
            raise TrainingError(
                f"stage {self.stage.name!r}: non-finite gradient at step {self.global_step + 1} in {', '.join(bad[:3])}"
                f"{' and more' if len(bad) > 3 else ''} (optimizer {group!r}). Lower the learning rate or check the "
                "inputs; then resume from the last checkpoint."
            )

    def update(self, group, terms, weights=None):
        weights = weights or {}
        self._check_terms(terms)
        total = sum(float(weights.get(k, 1.0)) * v.float() for k, v in terms.items() if float(weights.get(k, 1.0)))
        if not torch.is_tensor(total) or not total.requires_grad:
            raise TrainingError(f"stage {self.stage.name!r}: optimizer {group!r} got a loss without gradient; "
                                "are its modules frozen?")
        opt = self.optimizers[group]
        with torch.autocast(device_type=self.rt.device.type, enabled=False):
            self.scaler.scale(total / self.acc).backward()
        if self.boundary:
            if self.amp:
                self.scaler.unscale_(opt)  # non-finite grads here are the scaler's business: it skips the step
            else:
                self._check_grads(group)
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.params[group], self.clip)
            self.scaler.step(opt)
            opt.zero_grad(set_to_none=True)

    def train_step(self, batch):
        """One micro-batch; an optimizer step every `gradient_acc` micro-batches. Returns the logs."""
        self.boundary = (self.micro + 1) % self.acc == 0
        with self.autocast():
            logs = self.stage.step(batch, self.ctx)
        self.micro += 1
        if self.boundary:
            self.scaler.update()
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


def to_device(batch, device):
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


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


def build_checkpoint(trainer, position, finished=False):
    """Everything needed to continue (or inspect) a stage, as weights_only-loadable values."""
    stage, models = trainer.stage, trainer.models
    states = models.state_dicts()
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "stage": stage.name,
        "kind": stage.kind,
        "finished": bool(finished),
        "epoch": int(position["epoch"]),
        "batch_in_epoch": int(position["batch_in_epoch"]),
        "global_step": trainer.global_step,
        "total_steps": trainer.total_steps,
        "world_size": trainer.rt.world_size,
        "rank": trainer.rt.rank,
        "stage_spec": json.dumps(stage.spec, sort_keys=True, default=str),
        "trainer": trainer.state_dict(),
        "rng": capture_rng(),
    }
    if "backbone" in states:  # arcface_torch's key, so backbone loaders read this file directly
        ckpt["state_dict_backbone"] = states.pop("backbone")
    ckpt["modules"] = states
    return ckpt


def checkpoint_modules(ckpt):
    """Module name -> state dict stored in a checkpoint or stage file."""
    states = dict(ckpt.get("modules", {}))
    if "state_dict_backbone" in ckpt:
        states["backbone"] = ckpt["state_dict_backbone"]
    return states


class StageRun:
    """Runs one stage over a dataset: resumable data order, logging, checkpoints, stop, guard."""

    def __init__(self, stage, models, dataset, rt, output, *, seed=0, num_workers=0, frequent=10,
                 teacher=None, grad_teacher=None, stop=None, scalars=None, preview_batch=None, on_step=None,
                 checkpoint_meta=None):
        self.stage, self.models, self.dataset, self.rt = stage, models, dataset, rt
        self.checkpoint_meta = dict(checkpoint_meta or {})  # stored in every checkpoint (e.g. the dataset)
        self.output, self.seed, self.num_workers = output, int(seed), int(num_workers)
        self.frequent = max(1, int(frequent or 10))
        self.stop, self.scalars, self.preview, self.on_step = stop, scalars, preview_batch, on_step
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
        """Continue from a step checkpoint of this stage (same config, same number of processes;
        a changed spec is refused or, with `apply_changes`, applied: see training.resume_changes)."""
        from ..errors import CheckpointError
        from .resume_changes import apply_to_trainer, check_changes, describe_applied, spec_changes

        if ckpt.get("stage") != self.stage.name:
            raise CheckpointError(f"{source} belongs to stage {ckpt.get('stage')!r}, not {self.stage.name!r}")
        if int(ckpt.get("world_size", 1)) != self.rt.world_size:
            raise CheckpointError(
                f"{source} was written by {ckpt.get('world_size')} process(es); resume with the same number "
                f"(now {self.rt.world_size}) or pass --resume never to start the stage over")
        changes = check_changes(spec_changes(ckpt.get("stage_spec"), self.stage.spec), self.stage.name, source,
                                apply_changes)
        if int(ckpt.get("total_steps", -1)) != self.total_steps:
            raise CheckpointError(
                f"{source} was written for {ckpt.get('total_steps')} steps of stage {self.stage.name!r} but the "
                f"config now gives {self.total_steps}; restore the config or pass --resume never")
        self.models.load_state_dicts(checkpoint_modules(ckpt), source=source)
        self.trainer.load_state_dict(ckpt["trainer"])
        if changes:
            lrs = apply_to_trainer(self.trainer)
            self.log.warning(f"stage {self.stage.name}: applying changed settings on resume: "
                             f"{describe_applied(changes)} (learning rate now "
                             f"{', '.join(f'{g} {v:.3g}' for g, v in lrs.items())}); from here on the run differs "
                             "from an uninterrupted one")
        restore_rng(ckpt["rng"])
        self.position = {"epoch": int(ckpt["epoch"]), "batch_in_epoch": int(ckpt["batch_in_epoch"])}
        self.last_checkpoint = source
        self.log.info(f"stage {self.stage.name}: resumed from {source} at step {self.trainer.global_step}/"
                      f"{self.total_steps} (epoch {self.position['epoch']}, batch {self.position['batch_in_epoch']})")

    def save_checkpoint(self):
        from .integrity import save_checkpoint_file

        ckpt = {**build_checkpoint(self.trainer, self.position), **self.checkpoint_meta}
        self._guarded(save_checkpoint_file, ckpt, self.checkpoint_path,
                      f"stage {self.stage.name!r} at step {self.trainer.global_step}")
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

    def _write_preview(self, tag):
        if self.preview is None or not self.rt.is_main:
            return
        from .preview import write_preview

        path = os.path.join(self.output, "previews", f"{self.stage.name}_{tag}.png")
        write_preview(path, self.stage, self.preview, self.trainer.ctx)

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
                    logs = self._guarded(tr.train_step, to_device(batch, rt.device))
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
                        self._write_preview(f"step{step:07d}")
                    periodic = ckpt_every and step % ckpt_every == 0 and step < self.total_steps
                    if periodic:
                        self.save_checkpoint()
                    if self.on_step is not None:
                        self.on_step(self, step)
                    if self.stop is not None and any_true(self.stop.requested, rt):
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
        logs = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in logs.items()}
        values = dict(logs)
        for group, lr in self.trainer.lr().items():
            values["lr" if group in ("main", "generator") else f"lr_{group}"] = lr
        values["images_per_s"] = speed
        if self.scalars is not None:
            self.scalars.write(self.stage.name, step, values)
        terms = " ".join(f"{k} {v:.4f}" for k, v in logs.items())
        lrs = " ".join(f"{k} {v:.2e}" for k, v in values.items() if k.startswith("lr"))
        self.log.info(f"[{self.stage.name}] step {step}/{self.total_steps} epoch {self.position['epoch']} | {terms} | "
                      f"{lrs} | {speed:.1f} img/s | ETA {format_eta(eta)}")

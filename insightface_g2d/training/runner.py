"""A whole training run: the config's stages in order, then model.pt and the optional evaluation.

Output folder:
    config.json               the resolved config (written when a stage starts training, after its resume
                              was accepted, or with model.pt: a refused run leaves it as it was)
    training.log, scalars.csv (tensorboard/ when TensorBoard is installed)
    checkpoint_gpu_<rank>.pt  step checkpoint of the stage in progress (one per process)
    stage_<name>.pt           every module after stage <name> (also what marks it finished; records the
                              earlier stage files it started from: training.stage_inputs)
    <exports>                 files a stage exports when it finishes (Stage.export_files)
    model.pt                  plain state dict of the backbone: get_model(network, num_features=embedding_size)
    previews/*.png            masked / restored / clean faces
    eval.json, eval.md        the evaluation when config.eval.enabled (and eval_roc.png, its ROC curves)
    model.thresholds.json     model.pt's decision thresholds on the evaluation pairs (when evaluated)
    run_summary.json          what ran, how long, where things are
"""
import os
import shlex
import time

import torch


from ..errors import CheckpointError, ConfigError, OutputError, Terminated, TrainingError
from ..evaluation.report import write_json
from .checkpoint import (atomic_save, check_writable, checkpoint_checksum, checkpoint_dataset, checkpoint_modules,
                         checkpoint_name, checkpoint_progress, checkpoint_rank, checkpoint_seed, checkpoint_spec,
                         checkpoint_stage, load_checkpoint, remove_stale_temps, seed_everything, stage_file,
                         write_checked_checkpoint)
from .distributed import all_true, barrier, setup, teardown
from .integrity import check_dataset, dataset_record
from .kinds import face_restorer, final_network, module_parts
from .lock import OutputLock
from .logger import ScalarWriter, format_eta, setup_logging
from .output_errors import write_errors
from .output_folder import REPORT_FILES, check_layout
from .loop import StageRun
from .models import ModelSet
from .resume_agreement import agree_on_resume
from .resume_changes import seed_changes, spec_changes
from .signals import GracefulStop
from .stage_inputs import stage_inputs
from .stages import build_stage
from .teacher import TeacherProvider
from .warm_start import apply_warm_start


def output_dir(cfg, output=None):
    return output or cfg.get("output") or os.path.join("work_dirs", cfg.get("job_name") or "g2d")


def load_dataset(cfg):
    from ..data.factory import build_face_dataset

    dataset = build_face_dataset(cfg.rec, skip_bad=bool(cfg.get("skip_bad", False)))
    if cfg.get("num_classes") not in (None, dataset.num_classes):
        raise ConfigError(f"config.num_classes = {cfg.num_classes} but dataset {cfg.rec!r} has {dataset.num_classes} "
                          "identities; fix num_classes (or set it to None to take it from the data)")
    return dataset


def dataset_notes(cfg, dataset):
    """Warnings about the dataset's size keys: num_image (arcface_torch sizes its schedule with it;
    g2d-train counts the data) when it disagrees with the data."""
    if cfg.get("num_image") not in (None, len(dataset)):
        return [f"config.num_image = {cfg.num_image} but dataset {cfg.rec!r} has {len(dataset)} images; g2d-train "
                "uses the dataset's count (fix num_image, or set it to None, for arcface_torch)"]
    return []


def stage_dataset(base, stage, seed, num_workers=0):
    """MaskedPairDataset over `base` with the stage's mask settings."""
    from ..masks.masked_pairs import MaskedPairDataset

    masks = stage.spec.masks
    prob = stage.mask_prob()
    synth = None
    if prob > 0:
        from ..masks.synthesizer import MaskSynthesizer

        synth = MaskSynthesizer(styles=masks.get("styles"), positions=tuple(masks.get("positions") or
                                                                            ("normal", "high", "low")))
        if num_workers > 0:
            synth.warmup()  # build the template bank once here; forked workers share it
    from ..masks.degrade import Degradation

    return MaskedPairDataset(base, mask_prob=prob, styles=masks.get("styles"), seed=int(seed), flip=True,
                             synthesizer=synth, degrade=Degradation.from_config(masks.get("degrade")))


def build_models(stages, num_classes, seed):
    """Every module any stage needs, built in a fixed order from a fixed seed (so reruns match)."""
    seed_everything(seed)
    models = ModelSet(module_parts())
    for stage in stages:
        for name, factory in stage.module_factories(num_classes).items():
            if name not in models:
                models.add(name, factory())
    return models


def owns_temp_target(target, rank, world_size):
    """Whether this rank cleans up stale temporaries of file `target` at start: its own step
    checkpoint; rank 0 also every other file it alone writes (stage_*.pt, model.pt, exports, the
    JSON and Markdown reports) and the
    step checkpoints of ranks that no longer exist (a resume with fewer processes)."""
    owner = checkpoint_rank(target)
    if owner is not None:
        return owner == rank or (rank == 0 and owner >= world_size)
    return rank == 0 and (target.endswith(".pt") or target in REPORT_FILES)


def remove_stale_temp_files(output, rt, log):
    """Delete the temporary checkpoint files a killed earlier run left (atomic_save writes
    `.<file>.<random>.tmp` and renames it; SIGKILL mid-write leaves it, as large as a checkpoint).
    Runs before this run writes anything; each rank only touches the files it writes itself."""
    removed = remove_stale_temps(output, lambda target: owns_temp_target(target, rt.rank, rt.world_size))
    if rt.is_main:  # previews are written atomically by rank 0 too
        removed += [(f"previews/{name}", size) for name, size in
                    remove_stale_temps(os.path.join(output, "previews"), lambda target: target.endswith(".png"))]
    if removed:
        size = sum(n for _, n in removed)
        log.warning(f"removed {len(removed)} temporary checkpoint file(s) ({size / 2 ** 20:.1f} MiB) left by an "
                    f"interrupted run: {', '.join(name for name, _ in removed)}")
    return removed


def _resolve_resume(resume, cfg):
    if resume is None:
        resume = cfg.get("resume")
        resume = "auto" if resume in (None, False, True, "") else resume
    return str(resume)


class Run:
    """State shared across the stages of one `run_training` call.

    Built in two steps: the constructor reads and checks (dataset, stages, memory) without writing
    anything; `build` makes the models and teachers; `open_outputs` starts the log files.
    """

    def __init__(self, cfg, output, rt, resume, on_step=None, apply_changes=False, command=None):
        self.cfg, self.output, self.rt, self.on_step = cfg, output, rt, on_step
        self.resume, self.apply_changes = resume, bool(apply_changes)
        self.command = command or resume_command(cfg, output)
        self.log = setup_logging(None, rt.rank)  # console only until open_outputs
        self.base = load_dataset(cfg)
        self.dataset = dataset_record(cfg.rec, self.base)
        self.stages = [build_stage(s, cfg) for s in cfg.stages]
        self.models = self.teachers = self.scalars = None
        self.finished = []
        self.outputs = {}  # stage name -> checksum of its stage file (rank 0: loaded or written by this run)
        self.config_written = False
        self.times = {}

    def build(self):
        from .preflight import check_model_memory

        check_model_memory(self.stages, self.base.num_classes, self.rt.device, self.cfg.rec)
        self.models = build_models(self.stages, self.base.num_classes, self.cfg.seed)
        apply_warm_start(self.models, final_network(self.stages), self.cfg, self.log)
        self.models.to(self.rt.device)
        self.teachers = TeacherProvider(self.models, self.stages, self.base, self.rt.device)

    def open_outputs(self):
        os.makedirs(self.output, exist_ok=True)
        self.log = setup_logging(self.output, self.rt.rank)
        self.scalars = ScalarWriter(self.output, enabled=self.rt.is_main)

    def path(self, name):
        return os.path.join(self.output, name)

    def is_finished(self, stage):
        return os.path.isfile(self.path(stage_file(stage.name)))

    def load_finished(self, stage):
        hint = f"delete it to train stage {stage.name} again, or use a new --output folder"
        ckpt = load_checkpoint(self.path(stage_file(stage.name)), hint=hint)
        check_dataset(checkpoint_dataset(ckpt), self.dataset, stage_file(stage.name), hint)
        self.models.load_state_dicts(checkpoint_modules(ckpt), source=stage_file(stage.name))
        self.finished.append(stage.name)
        self.outputs[stage.name] = checkpoint_checksum(ckpt)
        changes = spec_changes(checkpoint_spec(ckpt), stage.spec) + seed_changes(checkpoint_seed(ckpt), self.cfg.seed)
        changed = [key for key, _, _ in changes]
        if changed:
            self.log.warning(f"stage {stage.name} was finished with other settings ({', '.join(changed)}); "
                             f"using it as it is (delete {stage_file(stage.name)} to train it again)")

    def write_config(self):
        """config.json, once, when the run is about to change the output folder's training state:
        when a stage starts training (after its resume was accepted) or model.pt is written."""
        if self.rt.is_main and not self.config_written:
            write_json(self.path("config.json"), self.cfg, default=str)
        self.config_written = True

    def teachers_for(self, stage):
        targets, grad = stage.teacher_use()
        spec = stage.spec.teacher
        teacher = self.teachers.get(spec, stage.name, False, self.finished) if targets else None
        grad_teacher = self.teachers.get(spec, stage.name, True, self.finished) if grad else None
        if teacher is not None:
            stage.check_teacher_size(teacher.dim)
        return teacher, grad_teacher

    def find_resume(self, stage):
        """The step checkpoint to continue `stage` from, or None: the run's own step checkpoint
        ("auto"; one of another stage is ignored) or the file --resume names (used once; one of
        another stage is refused). The one place that checks which stage a checkpoint belongs to."""
        if self.resume == "never":
            return None, None
        explicit = self.resume != "auto"
        if explicit:
            path = self.resume.replace("{rank}", str(self.rt.rank))  # one file per rank under torchrun
            self.resume = "auto"  # an explicit file is used once
        else:
            path = self.path(checkpoint_name(self.rt.rank))
            if not os.path.isfile(path):
                return None, None
        ckpt = load_checkpoint(path)
        owner = checkpoint_stage(ckpt)
        if owner != stage.name:
            if explicit:
                raise CheckpointError(f"--resume {path} belongs to stage {owner!r}, not {stage.name!r} (the next "
                                      "stage to run)")
            self.log.info(f"ignoring {path}: it belongs to stage {owner!r}")
            return None, None
        check_dataset(checkpoint_dataset(ckpt), self.dataset, path, "pass --resume never to start the stage over")
        return ckpt, path

    def run_stage(self, index, stage, stop):
        cfg, rt = self.cfg, self.rt
        try:
            ckpt, source = self.find_resume(stage)
            error = None
        except CheckpointError as err:
            ckpt, source, error = None, None, err
        agree_on_resume(stage.name, None if ckpt is None else checkpoint_progress(ckpt)["global_step"], rt, error)
        if ckpt is None:
            seed_everything(cfg.seed + 1000 * (index + 1))  # a stage's randomness does not depend on earlier ones
        teacher, grad_teacher = self.teachers_for(stage)
        dataset = stage_dataset(self.base, stage, cfg.seed, cfg.num_workers)
        preview = None
        if rt.is_main:
            from .preview import preview_batch

            preview = preview_batch(dataset)
        run = StageRun(stage, self.models, dataset, rt, self.output, seed=cfg.seed, num_workers=cfg.num_workers,
                       frequent=cfg.frequent, teacher=teacher, grad_teacher=grad_teacher, stop=stop,
                       scalars=self.scalars, preview_batch=preview, on_step=self.on_step,
                       restorer=face_restorer(stage, self.stages), dataset_record=self.dataset)
        if ckpt is not None:
            run.resume_from(ckpt, source, apply_changes=self.apply_changes)
        self.write_config()
        self.log.info(f"stage {stage.name} ({stage.kind}): {run.total_steps} steps, batch {stage.spec.batch_size} x "
                      f"{rt.world_size} process(es), train {', '.join(stage.spec.train)}, losses "
                      f"{', '.join(f'{k}={v:g}' for k, v in stage.spec.losses.items() if v)}")
        t0 = time.time()
        status = run.run()
        self.times[stage.name] = self.times.get(stage.name, 0.0) + time.time() - t0
        if status == "stopped":
            return status
        if rt.is_main:
            ckpt = run.checkpoint(finished=True, inputs=stage_inputs(self.stages, index, self.outputs))
            what = f"stage {stage.name!r} finished"
            exports = {name: {k: v.detach().cpu() for k, v in state.items()}
                       for name, state in stage.exports(self.models).items()}
            # The one NaN/inf scan, before writing anything: the exports are states of the run's
            # modules, which the checkpoint holds, so neither they nor the stage file are scanned again.
            check_writable(ckpt, what, self.path(stage_file(stage.name)))
            for name, state in exports.items():  # exports first: the stage file is what marks it finished
                atomic_save(state, self.path(name))
            self.outputs[stage.name] = write_checked_checkpoint(ckpt, self.path(stage_file(stage.name)))
            run.write_preview("final")
        barrier(rt)
        step_ckpt = run.checkpoint_path
        if os.path.isfile(step_ckpt):
            os.unlink(step_ckpt)  # superseded by stage_<name>.pt
        self.finished.append(stage.name)
        self.log.info(f"stage {stage.name} finished in {format_eta(self.times[stage.name])}: "
                      f"{self.path(stage_file(stage.name))}")
        return status

    def write_model(self):
        found = final_network(self.stages)
        if found is None:
            self.log.info("no stage of this config trains a network: no model.pt")
            return None, None, None
        name, network, dim = found
        # not scanned for NaN/inf: these weights are in a stage file, scanned when written or loaded
        state = {k: v.detach().cpu() for k, v in self.models.get(name).state_dict().items()}
        path = atomic_save(state, self.path("model.pt"))
        self.log.info(f"model.pt: {network} backbone, embedding {dim} "
                      f"(load: get_model({network!r}, num_features={dim}).load_state_dict(torch.load(path)))")
        return path, network, dim


def resume_command(cfg, output):
    """The command that continues this run (when the caller did not pass the exact one it ran)."""
    return f"g2d-train {shlex.quote(str(cfg.get('config_path')))} --output {shlex.quote(str(output))}"


def lower_lr_advice(run, stage, err):
    """`err` (a numeric failure) with the command that resumes `stage` with a tenth of its
    learning rate; other training errors unchanged."""
    if "non-finite" not in str(err) and "NaN/inf" not in str(err):
        return err
    lr = float(stage.spec.lr) / 10
    return TrainingError(f"{err}. To resume with a lower learning rate: {run.command} "
                         f"--set stages.{stage.name}.lr={lr:.3g} --apply-changes")


def _preflight(run, cfg, stage, evaluate):
    """Every check that needs no output file, in the order a user would fix them."""
    from .preflight import check_eval, check_stage_starts, check_stale_stages, check_teacher_sizes
    from .teacher import check_teacher_files

    names = [s.name for s in run.stages]
    if stage is not None and stage not in names:
        from ..errors import suggest

        raise ConfigError(f"--stage {stage!r}: no such stage{suggest(stage, names)}; stages: {', '.join(names)}")
    check_layout(run.output, run.stages, run.rt.rank)
    check_eval(cfg, run.stages, evaluate)
    todo = [s for s in run.stages if (stage is None or s.name == stage) and not run.is_finished(s)]
    check_stale_stages(run, todo)
    for s in todo:  # fail before training on missing teacher files
        if any(s.teacher_use()):
            check_teacher_files(s.spec.teacher, s.name)
    run.build()
    check_stage_starts(run, todo)
    check_teacher_sizes(run, todo)


def _lock(output, rt):
    """The output folder's lock on rank 0; every rank fails together when it is taken."""
    lock, error = None, None
    if rt.is_main:
        try:
            lock = OutputLock(output).acquire()
        except OutputError as err:
            error = err
    if not all_true(error is None, rt):
        raise error or OutputError(f"output folder {output!r} is in use by another run (see rank 0)")
    return lock


def run_training(cfg, output=None, device="auto", stage=None, resume=None, evaluate=True, on_step=None,
                 apply_changes=False, command=None):
    """Run the config's stages (or only `stage`), skipping finished ones; resume per `resume`
    ("auto": continue the step checkpoint of the current stage, "never", or a checkpoint path).
    `apply_changes`: a resumed stage whose spec changed continues with the new values (see
    training.resume_changes) instead of refusing. `command`: the command line that repeats this
    run, quoted in the resume advice. Returns a summary dict (status "finished" | "stopped" | "partial")."""
    rt = setup(device)
    lock = None
    try:
        if not rt.cuda and cfg.get("cpu_threads"):
            if int(cfg.cpu_threads) < 1:
                raise ConfigError(f"cpu_threads / --threads must be >= 1, got {cfg.cpu_threads}")
            torch.set_num_threads(int(cfg.cpu_threads))
        output = output_dir(cfg, output)
        run = Run(cfg, output, rt, _resolve_resume(resume, cfg), on_step, apply_changes, command)
        _preflight(run, cfg, stage, evaluate)
        with write_errors(output):
            os.makedirs(output, exist_ok=True)
            lock = _lock(output, rt)
            try:
                return _train(run, cfg, output, rt, stage, evaluate, lock)
            finally:
                if run.scalars is not None:
                    run.scalars.close()
    finally:
        if lock is not None:
            lock.release()
        teardown(rt)


def _train(run, cfg, output, rt, stage, evaluate, lock):
    names = [s.name for s in run.stages]
    run.open_outputs()
    note = lock.takeover_note() if lock is not None else None
    if note:
        run.log.warning(note)
    remove_stale_temp_files(output, rt, run.log)
    for line in list(cfg.get("config_notes") or ()) + dataset_notes(cfg, run.base):
        run.log.warning(line)
    run.log.info(f"output {os.path.abspath(output)} | device {rt.device} | {rt.world_size} process(es) | "
                 f"dataset {cfg.rec} ({len(run.base)} images, {run.base.num_classes} identities)")
    status = "finished"
    t0 = time.time()

    def on_signal(sig):
        run.log.warning(f"{sig}: finishing the current step and saving a checkpoint "
                        "(Ctrl-C again aborts without saving)")

    with GracefulStop(on_request=on_signal) as stop:
        for index, st in enumerate(run.stages):
            if run.is_finished(st):
                run.log.info(f"stage {st.name}: already finished ({stage_file(st.name)}), skipping")
                run.load_finished(st)
                continue
            if stage is not None and st.name != stage:
                if index < names.index(stage):
                    run.log.warning(f"stage {st.name} has not run: stage {stage} starts without its training")
                continue
            try:
                status = run.run_stage(index, st, stop)
            except TrainingError as err:
                raise lower_lr_advice(run, st, err) from None
            if status == "stopped":
                break
    summary = {"output": os.path.abspath(output), "status": status, "stage_seconds": run.times,
               "seconds": time.time() - t0, "finished_stages": list(run.finished)}
    if status == "stopped":
        run.log.warning(f"stopped; checkpoint saved. Resume with the same command: {run.command}")
    elif len(run.finished) == len(run.stages):
        run.write_config()
        if rt.is_main:
            path, network, dim = run.write_model()
            if path:
                summary.update(model=path, network=network, embedding_size=dim)
        barrier(rt)
        # No collective after training: the other ranks leave now instead of waiting in a barrier
        # (NCCL's timeout is 10 minutes) while rank 0 evaluates alone.
        teardown(rt)
        ev = cfg.get("eval") or {}
        if rt.is_main and evaluate and ev.get("enabled"):
            from .evaluate import evaluate_run

            t1 = time.time()
            try:
                summary["eval"] = evaluate_run(cfg, run.models, run.stages, output, rt.device)
            except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM under run_cli (errors.Terminated)
                why = "SIGTERM" if isinstance(stop, Terminated) else "SIGINT"
                run.log.warning(f"{why} during the evaluation: every stage and model.pt are saved; run the same "
                                f"command to evaluate: {run.command}")
                raise
            summary["eval_seconds"] = time.time() - t1
    else:
        summary["status"] = "partial"
    summary["total_seconds"] = time.time() - t0
    if rt.is_main:
        write_json(run.path("run_summary.json"), summary, default=str)
    return summary

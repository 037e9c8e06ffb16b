"""The checkpoint format, in one place: what a step checkpoint or stage file holds, which stage it
belongs to, writing it atomically, reading it safely, and the RNG states it carries.

A checkpoint is a dict (every value loadable with weights_only=True):
    format "g2d-train-checkpoint"; stage (its name), kind; finished (True in stage_<name>.pt);
    epoch, batch_in_epoch, global_step, total_steps; world_size, rank; stage_spec (the resolved
    spec, JSON); trainer (optimizers, schedulers, AMP scaler, step counters); rng; modules
    {name: state dict}, except the backbone's, stored as state_dict_backbone (arcface_torch's key,
    so its backbone loaders read these files); dataset (training.integrity.dataset_record);
    seed (config.seed, which orders the data and draws the masks); inputs (stage files only:
    {earlier stage: checksum of its stage file when this stage started, or None},
    training.stage_inputs); checksum (sealed when written, training.integrity).

Every file is written to a temporary file in the same folder, flushed and fsync'ed, then renamed
over the target with os.replace: a crash or a full disk mid-write leaves the previous file intact.
Every file is read with torch.load(weights_only=True), so RNG states are stored as tensors and
plain Python values.

A process killed while writing (SIGKILL, OOM killer, preemption) leaves its temporary file
`.<target>.<random>.tmp` behind; `remove_stale_temps` deletes such leftovers when a run starts.
"""
import json
import os
import random
import re

import numpy as np
import torch

from ..backbones.checkpoint import load_tensor_file
from ..fileio import atomic_open, os_error_in
from .integrity import CHECKSUM_KEY, check_checkpoint_finite, check_finite, seal, verify
from .output_errors import write_error

CHECKPOINT_FORMAT = "g2d-train-checkpoint"


TEMP_SUFFIX = ".tmp"
# `.<target>.<random part>.tmp`, exactly what atomic_save (fileio.atomic_open) creates
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")


def temp_target(filename):
    """The target file name of an atomic_save temporary file name, or None for any other name."""
    match = _TEMP_RE.match(filename)
    return match.group("target") if match else None


def remove_stale_temps(folder, owns):
    """Delete atomic_save temporaries in `folder` whose target name satisfies `owns(name)`.

    Only call this when no process of the run is writing yet: a live write's temporary file looks
    the same. A symbolic link at `folder` is not followed (nothing of the run is in what it points
    to). Returns [(file name, size in bytes)] of what was removed.
    """
    import errno
    import stat

    removed = []
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return removed  # missing, a file, or a link
        raise
    try:
        for filename in sorted(os.listdir(dir_fd)):
            target = temp_target(filename)
            if target is None or not owns(target):
                continue
            try:
                st = os.stat(filename, dir_fd=dir_fd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    continue
                os.unlink(filename, dir_fd=dir_fd)
            except FileNotFoundError:
                continue  # gone meanwhile
            removed.append((filename, st.st_size))
    finally:
        os.close(dir_fd)
    return removed


def atomic_save(obj, path):
    """torch.save(obj) to `path` without ever leaving a partial file at `path`."""
    path = os.fspath(path)
    try:
        with atomic_open(path, suffix=TEMP_SUFFIX) as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        err = os_error_in(exc)
        if err is None:
            raise
        raise write_error(err, path) from None
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not support fsync on directories
    finally:
        os.close(fd)


def load_checkpoint(path, hint="delete it to start the stage over"):
    """A checkpoint dict read with weights_only=True, its checksum verified and its weights finite;
    CheckpointError when missing, unreadable, damaged or holding NaN/inf (see training.integrity)."""
    ckpt = load_tensor_file(path, hint=hint)
    verify(ckpt, path, hint)
    check_finite(checkpoint_modules(ckpt), path, hint)
    return ckpt


def save_checkpoint_file(ckpt, path, what):
    """Refuse non-finite weights (TrainingError naming them), seal, write atomically."""
    check_writable(ckpt, what, path)
    return write_checked_checkpoint(ckpt, path)


def write_checked_checkpoint(ckpt, path):
    """Seal and write atomically a checkpoint its caller already passed through check_writable;
    returns the checksum it was sealed with."""
    sealed = seal(ckpt)
    atomic_save(sealed, path)
    return checkpoint_checksum(sealed)


def check_writable(ckpt, what, path):
    """TrainingError naming the NaN/inf weights of `ckpt`, about to be written to `path`."""
    check_checkpoint_finite(checkpoint_modules(ckpt), what, path)


# ------------------------------------------------------------------------------------- the format
def checkpoint_name(rank):
    """Per-rank step checkpoint, named like arcface_torch's (each rank keeps its own RNG states)."""
    return f"checkpoint_gpu_{rank}.pt"


_CHECKPOINT_NAME_RE = re.compile(r"checkpoint_gpu_(\d+)\.pt")


def checkpoint_rank(filename):
    """The rank whose step checkpoint `filename` is (the inverse of checkpoint_name), or None."""
    match = _CHECKPOINT_NAME_RE.fullmatch(filename)
    return int(match.group(1)) if match else None


def stage_file(name):
    """The file that holds every module after stage `name` (and marks it finished)."""
    return f"stage_{name}.pt"


def build_checkpoint(stage, states, trainer_state, position, progress, finished=False, dataset=None, seed=None,
                     inputs=None):
    """A checkpoint of `stage`: module `states` {name: state dict}, the trainer's state dict, the
    data `position` {epoch, batch_in_epoch} and `progress` {global_step, total_steps, world_size,
    rank}; the current RNG states of `progress["device"]`; the training data's `dataset` record
    (training.integrity.dataset_record), the run's `seed` and the stage's `inputs`
    (training.stage_inputs) when given."""
    states = dict(states)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "stage": stage.name,
        "kind": stage.kind,
        "finished": bool(finished),
        "epoch": int(position["epoch"]),
        "batch_in_epoch": int(position["batch_in_epoch"]),
        "global_step": progress["global_step"],
        "total_steps": progress["total_steps"],
        "world_size": progress["world_size"],
        "rank": progress["rank"],
        "stage_spec": json.dumps(stage.spec, sort_keys=True, default=str),
        "trainer": trainer_state,
        "rng": capture_rng(progress["device"]),
    }
    if "backbone" in states:  # arcface_torch's key, so backbone loaders read this file directly
        ckpt["state_dict_backbone"] = states.pop("backbone")
    ckpt["modules"] = states
    if dataset is not None:
        ckpt["dataset"] = dataset
    if seed is not None:
        ckpt["seed"] = int(seed)
    if inputs is not None:
        ckpt["inputs"] = dict(inputs)
    return ckpt


def checkpoint_seed(ckpt):
    """config.seed of the run that wrote the checkpoint, or None (written before seeds were recorded)."""
    seed = ckpt.get("seed")
    return seed if isinstance(seed, int) else None


def checkpoint_inputs(ckpt):
    """{earlier stage: checksum or None} the stage started from (training.stage_inputs), or None
    (a step checkpoint, or a stage file written before inputs were recorded)."""
    inputs = ckpt.get("inputs")
    return dict(inputs) if isinstance(inputs, dict) else None


def checkpoint_checksum(ckpt):
    """The checksum a checkpoint was sealed with, or None (written before checksums existed)."""
    value = ckpt.get(CHECKSUM_KEY)
    return value if isinstance(value, str) else None


def checkpoint_modules(ckpt):
    """Module name -> state dict stored in a checkpoint or stage file."""
    states = dict(ckpt.get("modules", {}))
    if "state_dict_backbone" in ckpt:
        states["backbone"] = ckpt["state_dict_backbone"]
    return states


def checkpoint_stage(ckpt):
    """The name of the stage a checkpoint belongs to."""
    return ckpt.get("stage")


def checkpoint_spec(ckpt):
    """The resolved stage spec the checkpoint was written with (a JSON string), or None."""
    return ckpt.get("stage_spec")


def checkpoint_progress(ckpt):
    """{global_step, total_steps, world_size} of a checkpoint (world_size 1 and the steps None
    when it does not record them)."""
    return {"global_step": ckpt.get("global_step"), "total_steps": ckpt.get("total_steps"),
            "world_size": int(ckpt.get("world_size", 1))}


def checkpoint_position(ckpt):
    """{epoch, batch_in_epoch}: where in the data the checkpoint was written."""
    return {"epoch": int(ckpt["epoch"]), "batch_in_epoch": int(ckpt["batch_in_epoch"])}


def checkpoint_trainer(ckpt):
    """The trainer's state dict (optimizers, schedulers, AMP scaler, step counters)."""
    return ckpt["trainer"]


def checkpoint_rng(ckpt):
    """The RNG states to restore with restore_rng."""
    return ckpt["rng"]


def checkpoint_dataset(ckpt):
    """The dataset record the checkpoint was trained on, or None (written before datasets were recorded)."""
    record = ckpt.get("dataset")
    return record if isinstance(record, dict) else None


def capture_rng(device=None):
    """RNG states of python, numpy, torch and, for a CUDA `device`, that one GPU (the process's own:
    under torchrun each rank sees every GPU but uses one), as weights_only-loadable values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if device is not None and torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def restore_rng(state, device=None):
    """Inverse of capture_rng; a CUDA state goes to `device` only (nothing else is touched, so a
    resume with fewer visible GPUs works). Older checkpoints stored the list of every visible GPU's
    state: the entry of `device`'s index is used when there is one."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or device is None or torch.device(device).type != "cuda":
        return
    device = torch.device(device)
    if isinstance(cuda, (list, tuple)):  # older format: one state per visible GPU
        index = device.index or 0
        if index >= len(cuda):
            return
        cuda = cuda[index]
    torch.cuda.set_rng_state(cuda, device)


def seed_everything(seed):
    """Seed python, numpy and torch (all devices)."""
    seed = int(seed) % (2 ** 32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

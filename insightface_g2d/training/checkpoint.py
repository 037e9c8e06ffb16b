"""Writing checkpoints atomically, reading them safely, and carrying RNG states through them.

Every file is written to a temporary file in the same folder, flushed and fsync'ed, then renamed
over the target with os.replace: a crash or a full disk mid-write leaves the previous file intact.
Every file is read with torch.load(weights_only=True), so RNG states are stored as tensors and
plain Python values.

A process killed while writing (SIGKILL, OOM killer, preemption) leaves its temporary file
`.<target>.<random>.tmp` behind; `remove_stale_temps` deletes such leftovers when a run starts.
"""
import os
import random
import re

import numpy as np
import torch

from ..backbones.checkpoint import load_tensor_file
from ..fileio import atomic_open


TEMP_SUFFIX = ".tmp"
# `.<target>.<mkstemp's random part>.tmp`, exactly what atomic_save creates
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")


def temp_target(filename):
    """The target file name of an atomic_save temporary file name, or None for any other name."""
    match = _TEMP_RE.match(filename)
    return match.group("target") if match else None


def remove_stale_temps(folder, owns):
    """Delete atomic_save temporaries in `folder` whose target name satisfies `owns(name)`.

    Only call this when no process of the run is writing yet: a live write's temporary file looks
    the same. Returns [(file name, size in bytes)] of what was removed.
    """
    removed = []
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return removed
    for filename in names:
        target = temp_target(filename)
        if target is None or not owns(target):
            continue
        path = os.path.join(folder, filename)
        try:
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            size = os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            continue  # gone meanwhile
        removed.append((filename, size))
    return removed


def atomic_save(obj, path):
    """torch.save(obj) to `path` without ever leaving a partial file at `path`."""
    path = os.fspath(path)
    try:
        with atomic_open(path, suffix=TEMP_SUFFIX) as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        from .output_folder import os_error_in, write_error

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
    from .integrity import check_finite, verify

    ckpt = load_tensor_file(path, hint=hint)
    verify(ckpt, path, hint)
    check_finite(ckpt, path, hint)
    return ckpt


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

"""Checkpoint integrity: a checksum sealed into every checkpoint, finite weights, the same dataset.

- `seal` stores a SHA-256 of the checkpoint's content (every tensor's dtype, shape and bytes, every
  plain value, in a fixed order) under "checksum"; `verify` recomputes it after loading. Damage that
  still unpickles (bytes changed inside a tensor, a flipped number) is caught here; damage that does
  not is caught by the reader (`backbones.checkpoint.load_tensor_file`).
- Non-finite weights are refused when a checkpoint is loaded and never written into a checkpoint
  or a finished stage file (training.checkpoint calls `check_finite` / `check_checkpoint_finite`).
- `dataset_record` describes the training data (spec, fingerprint, sizes); checkpoints carry it and
  `check_dataset` refuses to continue a stage or reuse a finished one on other data.

Checkpoints written before checksums existed have no "checksum" key: they load unverified.
"""
import hashlib

import torch

from ..errors import CheckpointError, TrainingError

CHECKSUM_KEY = "checksum"
_ALGO = "sha256"


def _feed(h, obj):
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        h.update(f"S{len(data)}:".encode())
        h.update(data)
    elif isinstance(obj, bytes):
        h.update(f"B{len(obj)}:".encode())
        h.update(obj)
    else:  # None, bool, int, float (repr round-trips floats exactly)
        h.update(f"P{type(obj).__name__}:{obj!r};".encode())


def content_checksum(ckpt):
    """'sha256:<hex>' of everything in `ckpt` except its checksum."""
    h = hashlib.new(_ALGO)
    _feed(h, {k: v for k, v in ckpt.items() if k != CHECKSUM_KEY})
    return f"{_ALGO}:{h.hexdigest()}"


def seal(ckpt):
    """`ckpt` with its checksum stored under "checksum" (a new dict; `ckpt` is not changed)."""
    out = {k: v for k, v in ckpt.items() if k != CHECKSUM_KEY}
    out[CHECKSUM_KEY] = content_checksum(out)
    return out


def verify(ckpt, path, hint="delete it to start the stage over"):
    """Raise CheckpointError when a sealed checkpoint's content does not match its checksum."""
    stored = ckpt.get(CHECKSUM_KEY)
    if stored is None:
        return False
    if not isinstance(stored, str) or content_checksum(ckpt) != stored:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: its content does not match the checksum "
                              f"written with it (a disk, copy or transfer error); {hint}")
    return True


def non_finite(states, limit=3):
    """'module.key' names (up to `limit`) of floating tensors holding NaN or inf in {module: state dict}."""
    bad = []
    for module, state in states.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad.append(f"{module}.{key}")
                if len(bad) >= limit:
                    return bad
    return bad


def check_finite(states, path, hint="delete it to start the stage over"):
    """Raise CheckpointError when the module states {module: state dict} of the checkpoint read
    from `path` hold non-finite weights."""
    bad = non_finite(states)
    if bad:
        raise CheckpointError(f"checkpoint {str(path)!r} holds NaN/inf weights ({', '.join(bad)}); it cannot be "
                              f"trained from; {hint}")


def check_checkpoint_finite(states, what, path):
    """TrainingError naming the NaN/inf weights in the module states {module: state dict} of a
    checkpoint about to be written to `path`."""
    bad = non_finite(states)
    if bad:
        raise TrainingError(f"{what}: the weights hold NaN/inf ({', '.join(bad)}); {path} was not written. "
                            "Lower the learning rate or check the inputs")


# ---------------------------------------------------------------------------------------- dataset
def dataset_record(spec, dataset):
    """What identifies the training data: its spec, fingerprint, number of images and identities."""
    fingerprint = dataset.fingerprint() if hasattr(dataset, "fingerprint") else None
    return {"spec": str(spec), "fingerprint": fingerprint, "images": int(len(dataset)),
            "identities": int(dataset.num_classes)}


def describe_dataset(rec):
    return (f"{rec.get('spec')!r} ({rec.get('images')} images, {rec.get('identities')} identities, "
            f"fingerprint {rec.get('fingerprint')})")


def check_dataset(before, current, source, hint):
    """Raise CheckpointError when the dataset record `before` (of checkpoint `source`) is training
    data other than `current`; None (a checkpoint written before datasets were recorded) passes."""
    if before is None:
        return
    keys = ("fingerprint", "images", "identities")
    if all(before.get(k) == current.get(k) for k in keys):
        return
    what = ("same size, different content or order" if before.get("images") == current.get("images")
            and before.get("identities") == current.get("identities") else "a different dataset")
    raise CheckpointError(f"{source} was trained on dataset {describe_dataset(before)} but config.rec is now "
                          f"{describe_dataset(current)} ({what}); restore config.rec, or {hint}")


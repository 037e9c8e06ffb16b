"""Loading backbone weights safely and with errors that say what does not match."""
import os
import re

import torch

from ..errors import CheckpointError

# Wrappers around a backbone's weights in the files people have: arcface_torch's resume
# checkpoint, and this project's stage checkpoints.
_NESTED_KEYS = ("state_dict_backbone", "backbone", "state_dict", "model")
DLIB_SUFFIX = ".dat"  # dlib's own model files (dlib_face_recognition_resnet_model_v1.dat): read by dlib_resnet.py


def load_tensor_file(path, what="checkpoint", hint=""):
    """A dict read with `torch.load(weights_only=True)`: tensors and plain types, never code.

    CheckpointError when missing, empty, corrupt, unsafe or not a dict; `hint` says what to do.
    """
    path = os.fspath(path)
    suffix = f" ({hint})" if hint else ""
    if not os.path.isfile(path):
        raise CheckpointError(f"{what} {path!r} does not exist{suffix}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"cannot read {what} {path!r}: {unreadable_reason(path, err)}{suffix}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {path!r} holds a {type(obj).__name__}, expected a dict{suffix}")
    return obj


# torch words it "Unsupported global: GLOBAL x.y" or "unsupported GLOBAL x.y whose module x is blocked"
_GLOBAL_RE = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.]+)", re.IGNORECASE)


def unreadable_reason(path, err):
    """Why torch.load(weights_only=True) refused `path`, in this project's words. Never torch's own
    text, which suggests weights_only=False: wrong for damaged bytes and unsafe for untrusted files."""
    try:
        if os.path.getsize(path) == 0:
            return "the file is empty (0 bytes; an interrupted copy or a full disk?)"
    except OSError as os_err:
        return f"the file cannot be read ({os_err.strerror})"
    if isinstance(err, OSError):
        return f"the file cannot be read ({err.strerror or err})"
    found = _GLOBAL_RE.search(str(err))
    if found:
        return (f"it holds Python objects ({found.group(1)}), not only tensors and plain values; loading it "
                "could run code, so it is refused. Re-save the weights with torch.save(model.state_dict())")
    return "not a PyTorch checkpoint, or a damaged one (cut short or overwritten)"


def non_finite_tensors(state, prefix="", limit=3):
    """Dotted names (up to `limit`) of the floating tensors holding NaN or inf in `state`, a dict
    that may nest dicts (a stage checkpoint's modules)."""
    bad = []
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            bad += non_finite_tensors(value, f"{name}.", limit - len(bad))
        elif torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(name)
        if len(bad) >= limit:
            break
    return bad[:limit]


def check_finite_weights(state, where):
    """CheckpointError naming the tensors of `state` that hold NaN or inf (weights or BatchNorm
    statistics): a network started from them computes NaN from its first step."""
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"{where} holds NaN/inf values ({', '.join(bad)}): the weights are damaged or come "
                              "from a run that diverged; use an earlier checkpoint")


def read_state_dict(source):
    """A plain state dict from a path or a dict; never unpickles arbitrary objects, never holds NaN
    or inf (CheckpointError naming the tensor). A dlib model file (`.dat`) is read by our reader of
    dlib's format into `DlibResNet`'s state dict."""
    if isinstance(source, dict):
        state = source
    elif os.fspath(source).lower().endswith(DLIB_SUFFIX):
        from .dlib_resnet import read_dlib_resnet

        return read_dlib_resnet(source)
    else:
        state = load_tensor_file(
            source, hint="expected a backbone.pth / model.pt state dict; "
            "re-save with torch.save(model.state_dict())")
        check_finite_weights(state, f"checkpoint {os.fspath(source)!r}")
    for key in _NESTED_KEYS:
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if state and all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_state_dict(model, state, network="network"):
    """Raise CheckpointError naming the first missing, unexpected or mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} wrong shapes (first: {'; '.join(shapes[:3])}; checkpoint vs {network})")
    if problems:
        raise CheckpointError(
            f"checkpoint does not match network {network!r}: " + "; ".join(problems)
            + ". Check the network name (e.g. r50 vs r100) and embedding size."
        )


def load_backbone_weights(model, source, network="network"):
    """Load `source` (path or state dict) into `model` strictly; return the model."""
    state = read_state_dict(source)
    check_state_dict(model, state, network)
    model.load_state_dict(state, strict=True)
    return model


def pretrained_state_dict(model, source):
    """The weights of checkpoint `source` (a path or a state dict) laid out for `model`, by one explicit
    rule: a checkpoint of `model`'s own architecture as it is; for a G2D network cut from a pretrained
    one (backbones/split.py), a checkpoint of that whole network, its tensors mapped onto the encoder
    and reformer by the step they belong to; for a whole network, a checkpoint of a G2D network cut
    from it, joined back. Any tensor left unmapped, missing or of the wrong shape is a CheckpointError
    naming it."""
    from .split import SplitG2D, split_state_dict

    state = read_state_dict(source)
    own = model.state_dict()
    if set(state) == set(own):
        check_state_dict(model, state, type(model).__name__)
        return state
    if isinstance(model, SplitG2D) and not any(k.startswith(("encoder.", "reformer.")) for k in state):
        return split_state_dict(model, state)
    if state and all(k.startswith(("encoder.", "reformer.")) for k in state) and not isinstance(model, SplitG2D):
        joined = {k.split(".", 1)[1]: v for k, v in state.items()}
        check_state_dict(model, joined, type(model).__name__)
        return joined
    check_state_dict(model, state, type(model).__name__)
    return state

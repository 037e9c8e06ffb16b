"""All processes of a run continue a stage from the same optimizer step, or none starts.

Each rank reads its own `checkpoint_gpu_<rank>.pt`. A kill between two ranks' saves, a deleted or
corrupt file, or a copy from another run would let ranks resume at different steps: they would
then follow different schedules and hang at the stage's final barrier. `agree_on_resume` compares
what every rank loaded (one all_gather) and refuses, on every rank, with one message.
"""
import torch
import torch.distributed as dist

from ..errors import CheckpointError

_NONE, _UNREADABLE = -1, -2


def _describe(code):
    if code == _NONE:
        return "no checkpoint (start over)"
    if code == _UNREADABLE:
        return "unreadable checkpoint"
    return f"step {code}"


def agree_on_resume(stage_name, step, rt, error=None):
    """Check that every rank resumes stage `stage_name` from the same step.

    step: global step of the checkpoint this rank loaded, or None when it starts the stage over.
    error: this rank's exception reading its checkpoint, re-raised here after the exchange (so the
    other ranks stop too instead of waiting for it).
    """
    if not rt.distributed:
        if error is not None:
            raise error
        return
    code = _UNREADABLE if error is not None else (_NONE if step is None else int(step))
    mine = torch.tensor([code], dtype=torch.int64, device=rt.device)
    everyone = [torch.zeros_like(mine) for _ in range(rt.world_size)]
    dist.all_gather(everyone, mine)
    codes = [int(t.item()) for t in everyone]
    if error is not None:
        raise error
    if len(set(codes)) == 1:
        return
    ranks = "; ".join(f"rank {r}: {_describe(c)}" for r, c in enumerate(codes))
    raise CheckpointError(
        f"stage {stage_name!r}: the processes would resume from different steps ({ranks}); every rank must "
        "continue from the same step. Restore the missing checkpoint_gpu_<rank>.pt files, or delete them all "
        "(or pass --resume never) to start the stage over")

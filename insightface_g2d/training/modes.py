"""Train/eval modes belong to the loop: helpers that look at modules without changing them.

`StageTrainer` alone decides which modules train (ModelSet.freeze_all + set_trainable). Anything
else that runs a module between steps (previews, evaluation, FLOP counting) must leave every
submodule's `training` flag as it found it: `eval_copy` runs a deep copy in eval mode (the live
module is never touched), `kept_modes` restores the flag of every submodule, not only the top one
(a backbone in eval mode may hold a child that trains).
"""
import copy
from contextlib import contextmanager


def eval_copy(module):
    """A deep copy of `module` in eval mode: run it without touching the live module's modes."""
    return copy.deepcopy(module).eval()


@contextmanager
def kept_modes(*modules):
    """Within the block modes may change; on exit every submodule's flag is what it was."""
    saved = [[(m, m.training) for m in module.modules()] for module in modules]
    try:
        yield
    finally:
        for pairs in saved:
            for m, flag in pairs:
                m.training = flag

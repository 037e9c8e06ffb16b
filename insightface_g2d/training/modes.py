"""Train/eval modes belong to the loop: helpers that look at modules without changing them.

`StageTrainer` alone decides which modules train (ModelSet.freeze_all + set_trainable). Anything
else that runs a module between steps (previews, evaluation) must leave every submodule's
`training` flag as it found it (a backbone in eval mode may hold a child that trains):
`eval_copy` runs a deep copy in eval mode, so the live module is never touched.
"""
import copy


def eval_copy(module):
    """A deep copy of `module` in eval mode: run it without touching the live module's modes."""
    return copy.deepcopy(module).eval()

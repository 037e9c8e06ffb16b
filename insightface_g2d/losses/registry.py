"""Loss terms that stages pick by name from a config's `losses` dict.

DISTILLATION_LOSSES: name -> DistillationLoss, the distillation terms of a stage kind that distils
a teacher's embeddings into a student: a function of the student's embeddings (N x Ds, masked
faces, with gradients) and the teacher's (N x Dt, clean faces, a target) that returns a scalar,
with its default weight. Such a stage takes this table as its loss terms, computes every term whose
weight is not 0, in this table's order; `losses=dict(name=weight)` in a stage sets the weight.

To add a loss, write its function in a module of this package and add one line to the table
(docs/architecture.md, "Add a loss"). Give a new term default weight 0.0 unless every distilling
stage should train with it.
"""
from typing import Callable, NamedTuple

from .relational import first_order, second_order, third_order


class DistillationLoss(NamedTuple):
    fn: Callable   # (student N x Ds, teacher N x Dt) -> scalar tensor
    weight: float  # default weight


DISTILLATION_LOSSES = {
    "rd1": DistillationLoss(first_order, 1.0),   # 1 - cos(student_i, teacher_i); needs Ds == Dt
    "rd2": DistillationLoss(second_order, 1.0),  # RKD distance: relations of pairs
    "rd3": DistillationLoss(third_order, 1.0),   # RKD angle: relations of triplets
}


def distillation_terms(student, teacher, weights):
    """{name: scalar} of the distillation terms with a non-zero weight in `weights`."""
    return {name: loss.fn(student, teacher) for name, loss in DISTILLATION_LOSSES.items()
            if weights.get(name)}

"""Losses: inpainting (stage 1), relational distillation (stage 2), classification heads (stage 3)."""
from .guards import check_finite
from .heads import MarginHead, SoftmaxHead, build_head, margin_logits
from .inpainting import hinge_d_loss, hinge_g_loss, identity_loss, masked_l1
from .relational import first_order, second_order, third_order

__all__ = [
    "MarginHead", "SoftmaxHead", "build_head", "check_finite", "first_order", "hinge_d_loss", "hinge_g_loss",
    "identity_loss", "margin_logits", "masked_l1", "second_order", "third_order",
]

"""The `reform` stage kind (G2D stage 2): with the encoder frozen (by default), the reformer maps
the descriptor of the masked face to the teacher's embedding of the clean face. Its loss terms are
the distillation losses of `losses.registry` (relational distillation of orders 1, 2 and 3 built
in: rd1 cosine, rd2 pairwise distances, rd3 triplet angles)."""
import dataclasses

import torch

from .base import KindSettings
from .g2d import G2DStage, require_g2d
from .student_space import check_student_geometry, student_embeddings


@dataclasses.dataclass(frozen=True)
class ReformSettings(KindSettings):
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    student_geometry: str = "none"  # "teacher": a reformer cut from the teacher (kinds/student_space.py)


class ReformStage(G2DStage):
    kind = "reform"
    settings = ReformSettings
    trainable = ("reformer",)
    allowed_train = ("reformer", "encoder")
    teacher_size_advice = "losses.rd1 = 0"
    resume_applicable = ("student_geometry",)

    @classmethod
    def default_losses(cls):
        from ...losses.registry import DISTILLATION_LOSSES

        return {name: term.weight for name, term in DISTILLATION_LOSSES.items()}

    @classmethod
    def resolve(cls, spec, cfg):
        out = super().resolve(spec, cfg)
        require_g2d(out, cfg)
        check_student_geometry(out)
        return out

    def teacher_use(self):
        return True, False

    def teacher_embedding_size(self):
        """rd1 compares student and teacher embeddings directly: the same size."""
        return int(self.cfg.embedding_size) if self.spec.losses.get("rd1") else None

    def step(self, batch, ctx):
        from ...losses.registry import distillation_terms

        w = self.spec.losses
        if "encoder" in self.spec.train:
            desc = ctx.module("encoder")(batch["masked"])
        else:
            with torch.no_grad():
                desc = ctx.raw("encoder")(batch["masked"])
        emb = student_embeddings(ctx.module("reformer")(desc).float(), self.spec, ctx)
        terms = distillation_terms(emb, ctx.targets(batch), w)
        ctx.update(self.primary_group, terms, w)
        return terms

"""The `distill` stage kind: a whole network (config.network, any `get_model` network) learns to
give the teacher's clean-face embedding for the masked face and, with `inputs` holding "clean" too,
for the clean face as well; optionally with the margin loss on the training labels.

This is the distillation baseline for masked faces (MaskInv, Huber et al., FG 2021: a student of
the teacher's architecture started from the teacher, trained on masked and clean faces to match the
frozen teacher's embeddings of the clean faces, plus a margin loss). With `config.init` the student
starts from a pretrained network (training/warm_start.py).

Loss terms: the distillation losses of `losses.registry` (rd1 cosine, rd2 pair distances, rd3
triplet angles) over the student's embeddings of every input against the teacher's targets, and
`margin` (weight 0 by default: no head is built). `student_geometry` (kinds/student_space.py):
"teacher" for a student that starts as the teacher.
"""
import dataclasses

import torch

from .g2d import G2DStage, backbone_factory
from .head import HeadSettings, HeadStage, accuracy, batch_inputs
from .student_space import check_student_geometry, student_embeddings


@dataclasses.dataclass(frozen=True)
class DistillSettings(HeadSettings):
    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 5e-4
    inputs: tuple = ("masked", "clean")
    student_geometry: str = "none"


class DistillStage(HeadStage, G2DStage):
    kind = "distill"
    settings = DistillSettings
    loss_name = "margin"
    head_module = "margin_head"
    trainable = ("backbone", "margin_head")  # the head only while the margin term has a weight
    allowed_train = ("backbone", "encoder", "reformer", "margin_head")
    teacher_size_advice = "losses.rd1 = 0"
    resume_applicable = ("student_geometry",)

    @classmethod
    def default_losses(cls):
        from ...losses.registry import DISTILLATION_LOSSES

        return {**{name: term.weight for name, term in DISTILLATION_LOSSES.items()}, "margin": 0.0}

    @classmethod
    def resolve(cls, spec, cfg):
        out = super().resolve(spec, cfg)
        check_student_geometry(out)
        if not out["losses"]["margin"]:
            out["train"] = [m for m in out["train"] if m != "margin_head"]
        elif "margin_head" not in out["train"]:
            out["train"] = list(out["train"]) + ["margin_head"]
        return out

    def _margin(self):
        return bool(self.spec.losses.get("margin"))

    def heads(self):
        return {self.head_module: self.embedding_size()} if self._margin() else {}

    def module_factories(self, num_classes):
        factories = backbone_factory(self.cfg)
        if self._margin():
            factories[self.head_module] = lambda: self.build_head(num_classes)
        return factories

    def check_batch(self, batch, ctx):
        if self._margin():
            super().check_batch(batch, ctx)

    def teacher_use(self):
        return True, False

    def teacher_embedding_size(self):
        """rd1 compares student and teacher embeddings directly: the same size."""
        return int(self.cfg.embedding_size) if self.spec.losses.get("rd1") else None

    def eval_models(self):
        return {"student": "model"}

    def embed(self, faces, ctx):
        return self.trained_embedding(faces, ctx)

    def step(self, batch, ctx):
        from ...losses.registry import distillation_terms

        w = self.spec.losses
        faces, labels, sizes = batch_inputs(self.spec, batch)
        emb = self.embed(faces, ctx).float()
        targets = ctx.targets(batch).repeat(len(sizes), 1)
        student = student_embeddings(emb, self.spec, ctx)
        terms = distillation_terms(student, targets, w)
        logs = {}
        if w["margin"]:
            loss, logits = ctx.module(self.head_module)(emb, labels, check=False)  # checked in check_batch
            terms["margin"] = loss
            for name, part_logits, part_labels in zip(self.spec.inputs, logits.split(sizes), labels.split(sizes)):
                logs[f"acc_{name}"] = accuracy(part_logits, part_labels)
        ctx.update(self.primary_group, terms, w)
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(student.detach(), targets, dim=1)
            for name, part in zip(self.spec.inputs, cos.split(sizes)):
                logs[f"cos_{name}"] = part.mean()
        return {**terms, **logs}

"""Shared by the kinds that train a classification head over embeddings (classify, finetune,
arcface): head type, inputs, margins, the step and per-input accuracy."""
import dataclasses
from typing import Optional

import torch

from ...errors import ConfigError
from ..checks import check_margin_list, check_number
from .base import KindSettings, Stage

INPUTS = ("masked", "clean")


@dataclasses.dataclass(frozen=True)
class HeadSettings(KindSettings):
    """The keys of every head kind; a kind subclasses it with its own defaults."""
    head: str = "margin"                   # "softmax" | "margin"
    inputs: tuple = INPUTS                 # the faces classified
    margin_list: Optional[tuple] = None    # None: config.margin_list
    scale: float = 64.0
    interclass_filtering_threshold: Optional[float] = None  # None: the config's


def accuracy(logits, labels):
    return (logits.argmax(1) == labels).float().mean().detach()


def batch_inputs(spec, batch):
    """Concatenate the batch faces named in spec.inputs -> (faces, labels, sizes)."""
    faces = [batch[k] for k in spec.inputs]
    labels = torch.cat([batch["label"]] * len(faces))
    return torch.cat(faces), labels, [f.shape[0] for f in faces]


class HeadStage(Stage):
    """A classification head (`head_module`) over the embeddings `embed` returns; one loss term,
    `loss_name`."""

    head_module = "head"
    loss_name = None

    @classmethod
    def resolve(cls, spec, cfg):
        out = super().resolve(spec, cfg)
        where = f"stage {out['name']!r}"
        inputs = out.get("inputs")
        if isinstance(inputs, str):
            inputs = (inputs,)
        if not isinstance(inputs, (list, tuple)) or not inputs or any(i not in INPUTS for i in inputs):
            raise ConfigError(f"stage {out['name']!r}: inputs must be a list of 'masked' and/or 'clean', "
                              f"got {inputs!r}")
        out["inputs"] = tuple(inputs)
        if not isinstance(out.get("head"), str) or out["head"] not in ("softmax", "margin"):
            raise ConfigError(f"{where}: head must be 'softmax' or 'margin', got {out.get('head')!r}")
        if out.get("margin_list") is None:
            out["margin_list"] = cfg.get("margin_list")
        check_margin_list(out["margin_list"], where=f"{where}: margin_list")
        out["margin_list"] = tuple(out["margin_list"])
        check_number(out, "scale", where, 0, exclusive=True, allow_none=False)
        if out.get("interclass_filtering_threshold") is None:
            out["interclass_filtering_threshold"] = cfg.get("interclass_filtering_threshold") or 0.0
        check_number(out, "interclass_filtering_threshold", where)
        out["interclass_filtering_threshold"] = float(out["interclass_filtering_threshold"])
        if out["head"] == "margin":
            from ...losses.heads import margin_kind

            margin_kind(out["margin_list"])  # raises ConfigError for unsupported margins
        return out

    def mask_prob(self):
        return float(self.spec.masks.get("prob", 1.0)) if "masked" in self.spec.inputs else 0.0

    def embedding_size(self):
        return int(self.cfg.embedding_size)

    def heads(self):
        return {self.head_module: self.embedding_size()}

    def build_head(self, num_classes):
        from ...losses.heads import build_head

        s, num_features = self.spec, self.embedding_size()
        if s.head == "margin":
            return build_head("margin", num_features=num_features, num_classes=num_classes,
                              margin_list=tuple(s.margin_list), scale=float(s.scale),
                              interclass_filtering_threshold=float(s.interclass_filtering_threshold))
        return build_head("softmax", num_features=num_features, num_classes=num_classes)

    def embed(self, faces, ctx):
        raise NotImplementedError

    def check_batch(self, batch, ctx):
        from ...losses.heads import check_labels

        check_labels(batch["label"].view(-1), ctx.raw(self.head_module).num_classes)

    def step(self, batch, ctx):
        faces, labels, sizes = batch_inputs(self.spec, batch)
        emb = self.embed(faces, ctx)
        loss, logits = ctx.module(self.head_module)(emb.float(), labels, check=False)  # checked in check_batch
        terms = {self.loss_name: loss}
        ctx.update(self.primary_group, terms, self.spec.losses)
        logs = dict(terms)
        for name, part_logits, part_labels in zip(self.spec.inputs, logits.split(sizes), labels.split(sizes)):
            logs[f"acc_{name}"] = accuracy(part_logits, part_labels)
        return logs

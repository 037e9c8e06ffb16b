"""The `finetune` stage kind (optional): everything trainable, arcface_torch's margin softmax
(margin_list) on masked and clean faces, for users who continue training in arcface_torch."""
import dataclasses

from ...errors import ConfigError
from .g2d import G2D_NETWORKS_HINT, G2DStage, backbone_factory, is_g2d
from .head import HeadSettings, HeadStage


@dataclasses.dataclass(frozen=True)
class FinetuneSettings(HeadSettings):
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4


class FinetuneStage(HeadStage, G2DStage):
    kind = "finetune"
    settings = FinetuneSettings
    loss_weights = dict(margin=1.0)
    loss_name = "margin"
    head_module = "margin_head"
    trainable = ("backbone", "margin_head")
    allowed_train = ("backbone", "encoder", "reformer", "margin_head")

    @classmethod
    def resolve(cls, spec, cfg):
        out = super().resolve(spec, cfg)
        if ("encoder" in out["train"] or "reformer" in out["train"]) and not is_g2d(cfg.get("network")):
            raise ConfigError(f"stage {out['name']!r}: encoder/reformer exist only in G2D; {G2D_NETWORKS_HINT} "
                              "or train 'backbone'")
        return out

    def module_factories(self, num_classes):
        return {**backbone_factory(self.cfg), self.head_module: lambda: self.build_head(num_classes)}

    def embed(self, faces, ctx):
        return self.trained_embedding(faces, ctx)

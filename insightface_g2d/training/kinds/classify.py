"""The `classify` stage kind (G2D stage 3): backbone frozen; FC + softmax (or a margin head) over
the training identities on masked and clean faces. It does not change the embedding; it gives the
classifier of the paper."""
import dataclasses

import torch

from .g2d import G2DStage, backbone_factory
from .head import HeadSettings, HeadStage


@dataclasses.dataclass(frozen=True)
class ClassifySettings(HeadSettings):
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head: str = "softmax"


class ClassifyStage(HeadStage, G2DStage):
    kind = "classify"
    settings = ClassifySettings
    loss_weights = dict(ce=1.0)
    loss_name = "ce"
    trainable = ("head",)
    allowed_train = ("head",)

    def module_factories(self, num_classes):
        return {**backbone_factory(self.cfg), self.head_module: lambda: self.build_head(num_classes)}

    def embed(self, faces, ctx):
        with torch.no_grad():
            return ctx.raw("backbone")(faces)

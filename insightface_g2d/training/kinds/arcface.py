"""The `arcface` stage kind: any `get_model` network + margin head trained on (by default clean)
faces, as arcface_torch does: the baseline to compare with, and a teacher for the G2D stages
(`teacher=dict(stage=NAME)`). Its modules are named after the stage (`<name>`, `<name>_head`);
it exports `<name>_model.pt` (plain backbone state dict)."""
import dataclasses
from typing import Optional

from ...errors import ConfigError, suggest
from ..checks import check_number
from .base import Network
from .head import HeadSettings, HeadStage


@dataclasses.dataclass(frozen=True)
class ArcFaceSettings(HeadSettings):
    network: Optional[str] = None          # None: config.network
    embedding_size: Optional[int] = None   # None: config.embedding_size
    inputs: tuple = ("clean",)


class ArcFaceStage(HeadStage):
    kind = "arcface"
    settings = ArcFaceSettings
    loss_weights = dict(margin=1.0)
    loss_name = "margin"
    trainable = ("{name}", "{name}_head")
    allowed_train = ("{name}", "{name}_head")
    serves_as_teacher = True

    @classmethod
    def default_length(cls, entry, cfg):
        """arcface_torch's own keys: num_epoch epochs, warmup_epoch of warm-up."""
        length = {"epochs": cfg.get("num_epoch")}
        if "warmup_epochs" not in entry:
            length["warmup_epochs"] = cfg.get("warmup_epoch") or 0.0
        return length

    @classmethod
    def resolve(cls, spec, cfg):
        out = super().resolve(spec, cfg)
        from ...backbones.registry import is_model, list_models

        if out.get("network") is None:
            out["network"] = cfg.get("network")
        if not is_model(out["network"]):
            raise ConfigError(f"stage {out['name']!r}: unknown network {out['network']!r}"
                              f"{suggest(out['network'], list_models())}")
        if out.get("embedding_size") is None:
            out["embedding_size"] = int(cfg.get("embedding_size"))
        check_number(out, "embedding_size", f"stage {out['name']!r}", 1, integer=True)
        out["embedding_size"] = int(out["embedding_size"])
        return out

    @property
    def head_module(self):
        return f"{self.name}_head"

    def embedding_size(self):
        return int(self.spec.embedding_size)

    def network(self):
        return Network(self.name, self.spec.network, int(self.spec.embedding_size))

    def eval_models(self):
        return {self.name: f"stage:{self.name}"}

    def module_factories(self, num_classes):
        s = self.spec

        def net():
            from ...backbones.registry import get_model

            # fp16=False: precision is decided by the trainer alone (training.precision), not in forward
            return get_model(s.network, dropout=0.0, fp16=False, num_features=int(s.embedding_size))

        return {self.name: net, self.head_module: lambda: self.build_head(num_classes)}

    def embed(self, faces, ctx):
        return ctx.module(self.name)(faces)

    def export_files(self):
        return [f"{self.name}_model.pt"]

    def exports(self, models):
        return {f"{self.name}_model.pt": models.get(self.name).state_dict()}

"""What the G2D stage kinds (inpaint, reform, classify, finetune) share: they train parts of one
G2D backbone, built from config.network / config.embedding_size, that model.pt holds at the end."""
from types import MappingProxyType

from ...errors import ConfigError
from .base import ModulePart, Network, Stage

G2D_NETWORKS_HINT = ("set network to a G2D variant (g2d, g2d_s, g2d_t, g2d_l, or one cut from a pretrained "
                     "network: g2d_r50, g2d_r100, g2d_dlib, ...)")


def is_g2d(network):
    from ...backbones.g2d import G2D_SPECS
    from ...backbones.split import parse_split_name
    from ...backbones.upper_face import parse_upper_name

    upper = parse_upper_name(network)
    network = upper[0] if upper is not None else network  # a G2D network seeing the upper face only
    return network in G2D_SPECS or parse_split_name(network) is not None


def backbone_factory(cfg):
    """{"backbone": builder} of the run's backbone (config.network, config.embedding_size)."""
    def build():
        from ...backbones.registry import get_model

        # fp16=False: precision is decided by the trainer alone (training.precision), not in forward
        return get_model(cfg.network, dropout=0.0, fp16=False, num_features=int(cfg.embedding_size))
    return {"backbone": build}


def require_g2d(spec, cfg):
    if not is_g2d(cfg.get("network")):
        raise ConfigError(f"stage {spec['name']!r} ({spec['kind']}) trains parts of a G2D backbone but "
                          f"config.network is {cfg.get('network')!r}: {G2D_NETWORKS_HINT}")


class G2DStage(Stage):
    """Base of the stages that train the run's G2D backbone (module "backbone": encoder + reformer)."""

    final_priority = 1  # model.pt is the G2D backbone whenever a stage trains it
    module_parts = MappingProxyType({part: ModulePart("backbone", part, f"a G2D backbone: {G2D_NETWORKS_HINT}")
                                     for part in ("encoder", "reformer")})

    def module_factories(self, num_classes):
        return backbone_factory(self.cfg)

    def network(self):
        return Network("backbone", self.cfg.network, int(self.cfg.embedding_size))

    def eval_models(self):
        return {"G2D": "model"}

    def trained_embedding(self, faces, ctx):
        """The backbone's embedding through the parts this stage trains (the others frozen, raw)."""
        train = self.spec.train
        if "backbone" in train:
            return ctx.module("backbone")(faces)
        enc = ctx.module("encoder") if "encoder" in train else ctx.raw("encoder")
        red = ctx.module("reformer") if "reformer" in train else ctx.raw("reformer")
        return red(enc(faces))

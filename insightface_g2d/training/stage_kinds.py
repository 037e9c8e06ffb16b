"""The built-in stage kinds: inpaint, reform, classify, finetune (G2D) and arcface (any network).

Batches are dicts from MaskedPairDataset: masked, clean (N x 3 x 112 x 112 in [-1, 1]),
alpha (N x 1 x 112 x 112), label, index (N int64), flipped (N bool).
"""
import torch

from ..errors import ConfigError
from .models import frozen
from .stages import Stage, _number, check_betas, register_stage_kind

G2D_NETWORKS_HINT = "set network to a G2D variant (g2d, g2d_s, g2d_t, g2d_l)"


def _is_g2d(network):
    from ..backbones.g2d import G2D_SPECS

    return network in G2D_SPECS


def _backbone_factory(cfg):
    def build():
        from ..backbones.registry import get_model

        return get_model(cfg.network, dropout=0.0, fp16=bool(cfg.fp16), num_features=int(cfg.embedding_size))
    return {"backbone": build}


def _accuracy(logits, labels):
    return (logits.argmax(1) == labels).float().mean().detach()


def _inputs(spec, batch):
    """Concatenate the batch faces named in spec.inputs -> (faces, labels, sizes)."""
    faces = [batch[k] for k in spec.inputs]
    labels = torch.cat([batch["label"]] * len(faces))
    return torch.cat(faces), labels, [f.shape[0] for f in faces]


def _check_inputs(spec, where):
    inputs = spec.get("inputs")
    if isinstance(inputs, str):
        inputs = spec["inputs"] = (inputs,)
    if not isinstance(inputs, (list, tuple)) or not inputs or any(i not in ("masked", "clean") for i in inputs):
        raise ConfigError(f"stage {where!r}: inputs must be a list of 'masked' and/or 'clean', got {inputs!r}")
    spec["inputs"] = tuple(inputs)


def _require_g2d(spec, cfg):
    if not _is_g2d(cfg.get("network")):
        raise ConfigError(f"stage {spec['name']!r} ({spec['kind']}) trains parts of a G2D backbone but "
                          f"config.network is {cfg.get('network')!r}: {G2D_NETWORKS_HINT}")


@register_stage_kind("inpaint")
class InpaintStage(Stage):
    """Stage 1: encoder + decoder restore the clean face from the masked one; a PatchGAN critic
    is trained in the same step with its own optimizer. Losses: masked-region-weighted L1,
    identity (1 - cos between teacher embeddings of restored and clean face), hinge adversarial."""

    defaults = dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.9), weight_decay=0.0,
                    d_lr=None, d_betas=None, hole_weight=6.0, decoder_widths=None, disc_widths=None)
    loss_weights = dict(l1=1.0, identity=0.1, adversarial=0.01)
    trainable = ("encoder", "decoder", "discriminator")
    allowed_train = ("encoder", "decoder", "discriminator")
    restores_faces = True

    @classmethod
    def validate(cls, spec, cfg):
        _require_g2d(spec, cfg)
        if spec["losses"]["adversarial"] == 0:
            spec["train"] = [m for m in spec["train"] if m != "discriminator"]
        elif "discriminator" not in spec["train"]:
            raise ConfigError(f"stage {spec['name']!r}: the adversarial loss needs the discriminator trained; "
                              "add it to train or set losses.adversarial = 0")
        for key in ("decoder_widths", "disc_widths"):
            w = spec.get(key)
            counts = isinstance(w, (list, tuple)) and all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in w)
            if w is not None and not counts:
                raise ConfigError(f"stage {spec['name']!r}: {key} must be a list of channel counts, got {w!r}")
        if spec["decoder_widths"] is not None and len(spec["decoder_widths"]) != 3:
            raise ConfigError(f"stage {spec['name']!r}: decoder_widths needs 3 numbers (28, 56, 112 px levels)")
        where = f"stage {spec['name']!r}"
        _number(spec, "d_lr", where, 0, exclusive=True)
        _number(spec, "hole_weight", where, 0, allow_none=False)
        if spec.get("d_betas") is not None:
            spec["d_betas"] = check_betas(spec["d_betas"], where, key="d_betas")

    def module_factories(self, num_classes):
        from ..backbones.g2d import G2D_SPECS, InpaintingDecoder, PatchDiscriminator, build_inpainter

        s, network = self.spec, self.cfg.network

        def decoder():
            if s.decoder_widths:
                return InpaintingDecoder(G2D_SPECS[network].descriptor_channels, widths=tuple(s.decoder_widths))
            return build_inpainter(network)

        def discriminator():
            return PatchDiscriminator(tuple(s.disc_widths)) if s.disc_widths else PatchDiscriminator()

        out = {**_backbone_factory(self.cfg), "decoder": decoder}
        if "discriminator" in s.train:
            out["discriminator"] = discriminator
        return out

    def optimizer_groups(self):
        groups = {"generator": [m for m in self.spec.train if m != "discriminator"]}
        if "discriminator" in self.spec.train:
            groups["discriminator"] = ["discriminator"]
        return groups

    def optimizer_settings(self, group):
        settings = super().optimizer_settings(group)
        if group == "discriminator":
            settings["lr"] = self.spec.d_lr or self.spec.lr
            settings["betas"] = tuple(self.spec.d_betas or self.spec.betas)
        return settings

    def teacher_use(self):
        identity = self.spec.losses["identity"] > 0
        return identity, identity

    def step(self, batch, ctx):
        from ..losses import hinge_d_loss, hinge_g_loss, identity_loss, masked_l1

        w = self.spec.losses
        masked, clean = batch["masked"], batch["clean"]
        restored = ctx.module("decoder")(ctx.module("encoder")(masked)).float()
        terms = {"l1": masked_l1(restored, clean, batch["alpha"], hole_weight=self.spec.hole_weight)}
        if w["identity"]:
            terms["identity"] = identity_loss(ctx.teacher_grad(restored), ctx.targets(batch))
        if w["adversarial"]:
            critic = ctx.raw("discriminator")
            with frozen(critic):  # the generator's loss must not train the critic
                terms["adversarial"] = hinge_g_loss(critic(restored).float())
        ctx.update("generator", terms, w)
        logs = dict(terms)
        if w["adversarial"]:
            logits = ctx.module("discriminator")(torch.cat([clean, restored.detach()])).float()
            real, fake = logits.chunk(2)
            d_terms = {"d_hinge": hinge_d_loss(real, fake)}
            ctx.update("discriminator", d_terms)
            logs.update(d_terms, d_real=real.mean().detach(), d_fake=fake.mean().detach())
        return logs


@register_stage_kind("reform")
class ReformStage(Stage):
    """Stage 2: encoder frozen; the reformer maps the descriptor of the masked face to the teacher's
    embedding of the clean face, by relational distillation of orders 1 (cosine), 2 (pairwise
    distances) and 3 (triplet angles)."""

    defaults = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, warmup_epochs=0.0)
    loss_weights = dict(rd1=1.0, rd2=1.0, rd3=1.0)
    trainable = ("reformer",)
    allowed_train = ("reformer", "encoder")
    uses = ("encoder",)

    @classmethod
    def validate(cls, spec, cfg):
        _require_g2d(spec, cfg)

    def module_factories(self, num_classes):
        return _backbone_factory(self.cfg)

    def teacher_use(self):
        return True, False

    def step(self, batch, ctx):
        from ..losses import relational_distillation

        w = self.spec.losses
        if "encoder" in self.spec.train:
            desc = ctx.module("encoder")(batch["masked"])
        else:
            with torch.no_grad():
                desc = ctx.raw("encoder")(batch["masked"])
        emb = ctx.module("reformer")(desc).float()
        _, terms = relational_distillation(emb, ctx.targets(batch), weights=(w["rd1"], w["rd2"], w["rd3"]))
        terms = {k: v for k, v in terms.items() if w[k]}
        ctx.update("main", terms, w)
        return terms


class _HeadStage(Stage):
    """Shared by classify and finetune: a classification head over backbone embeddings."""

    head_module = "head"

    @classmethod
    def validate(cls, spec, cfg):
        from .config import check_margin_list

        where = f"stage {spec['name']!r}"
        _check_inputs(spec, spec["name"])
        if not isinstance(spec.get("head"), str) or spec["head"] not in ("softmax", "margin"):
            raise ConfigError(f"{where}: head must be 'softmax' or 'margin', got {spec.get('head')!r}")
        if spec.get("margin_list") is None:
            spec["margin_list"] = cfg.get("margin_list")
        check_margin_list(spec["margin_list"], where=f"{where}: margin_list")
        spec["margin_list"] = tuple(spec["margin_list"])
        _number(spec, "scale", where, 0, exclusive=True, allow_none=False)
        if spec.get("interclass_filtering_threshold") is None:
            spec["interclass_filtering_threshold"] = cfg.get("interclass_filtering_threshold") or 0.0
        _number(spec, "interclass_filtering_threshold", where)
        spec["interclass_filtering_threshold"] = float(spec["interclass_filtering_threshold"])
        if spec["head"] == "margin":
            from ..losses.heads import margin_kind

            margin_kind(spec["margin_list"])  # raises ConfigError for unsupported margins

    def mask_prob(self):
        return float(self.spec.masks.get("prob", 1.0)) if "masked" in self.spec.inputs else 0.0

    def build_head(self, num_classes, num_features):
        from ..losses.heads import build_head

        s = self.spec
        if s.head == "margin":
            return build_head("margin", num_features=num_features, num_classes=num_classes,
                              margin_list=tuple(s.margin_list), scale=float(s.scale),
                              interclass_filtering_threshold=float(s.interclass_filtering_threshold))
        return build_head("softmax", num_features=num_features, num_classes=num_classes)

    def embed(self, faces, ctx):
        raise NotImplementedError

    def check_batch(self, batch, ctx):
        from ..losses.heads import check_labels

        check_labels(batch["label"].view(-1), ctx.raw(self.head_module).num_classes)

    def step(self, batch, ctx):
        faces, labels, sizes = _inputs(self.spec, batch)
        emb = self.embed(faces, ctx)
        loss, logits = ctx.module(self.head_module)(emb.float(), labels, check=False)  # checked in check_batch
        terms = {self.loss_name: loss}
        ctx.update("main", terms, self.spec.losses)
        logs = dict(terms)
        for name, part_logits, part_labels in zip(self.spec.inputs, logits.split(sizes), labels.split(sizes)):
            logs[f"acc_{name}"] = _accuracy(part_logits, part_labels)
        return logs


@register_stage_kind("classify")
class ClassifyStage(_HeadStage):
    """Stage 3: backbone frozen; FC + softmax (or a margin head) over the training identities on
    masked and clean faces. Does not change the embedding; gives the classifier of the paper."""

    defaults = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, head="softmax",
                    inputs=("masked", "clean"), margin_list=None, scale=64.0, interclass_filtering_threshold=None)
    loss_weights = dict(ce=1.0)
    loss_name = "ce"
    trainable = ("head",)
    allowed_train = ("head",)
    uses = ("backbone",)

    def module_factories(self, num_classes):
        return {**_backbone_factory(self.cfg),
                "head": lambda: self.build_head(num_classes, int(self.cfg.embedding_size))}

    def embed(self, faces, ctx):
        with torch.no_grad():
            return ctx.raw("backbone")(faces)


@register_stage_kind("finetune")
class FinetuneStage(_HeadStage):
    """Optional: everything trainable, arcface_torch's margin softmax (margin_list) on masked and
    clean faces, for users who continue training in arcface_torch."""

    defaults = dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, head="margin",
                    inputs=("masked", "clean"), margin_list=None, scale=64.0, interclass_filtering_threshold=None)
    loss_weights = dict(margin=1.0)
    loss_name = "margin"
    head_module = "margin_head"
    trainable = ("backbone", "margin_head")
    allowed_train = ("backbone", "encoder", "reformer", "margin_head")
    uses = ("backbone",)

    @classmethod
    def validate(cls, spec, cfg):
        super().validate(spec, cfg)
        if ("encoder" in spec["train"] or "reformer" in spec["train"]) and not _is_g2d(cfg.get("network")):
            raise ConfigError(f"stage {spec['name']!r}: encoder/reformer exist only in G2D; {G2D_NETWORKS_HINT} "
                              "or train 'backbone'")

    def module_factories(self, num_classes):
        return {**_backbone_factory(self.cfg),
                "margin_head": lambda: self.build_head(num_classes, int(self.cfg.embedding_size))}

    def embed(self, faces, ctx):
        train = self.spec.train
        if "backbone" in train:
            return ctx.module("backbone")(faces)
        enc = ctx.module("encoder") if "encoder" in train else ctx.raw("encoder")
        red = ctx.module("reformer") if "reformer" in train else ctx.raw("reformer")
        return red(enc(faces))


@register_stage_kind("arcface")
class ArcFaceStage(_HeadStage):
    """Any `get_model` network + margin head trained on (by default clean) faces, as arcface_torch
    does: the baseline to compare with, and a teacher for the G2D stages. Its modules are named after
    the stage (`<name>`, `<name>_head`); it exports `<name>_model.pt` (plain backbone state dict)."""

    defaults = dict(network=None, embedding_size=None, head="margin", inputs=("clean",), margin_list=None,
                    scale=64.0, interclass_filtering_threshold=None)
    loss_weights = dict(margin=1.0)
    loss_name = "margin"
    trainable = ("{name}", "{name}_head")
    allowed_train = ("{name}", "{name}_head")

    @classmethod
    def validate(cls, spec, cfg):
        super().validate(spec, cfg)
        from ..backbones.registry import list_models

        from ..errors import suggest

        if spec.get("network") is None:
            spec["network"] = cfg.get("network")
        if spec["network"] not in list_models():
            raise ConfigError(f"stage {spec['name']!r}: unknown network {spec['network']!r}"
                              f"{suggest(spec['network'], list_models())}")
        if spec.get("embedding_size") is None:
            spec["embedding_size"] = int(cfg.get("embedding_size"))
        _number(spec, "embedding_size", f"stage {spec['name']!r}", 1, integer=True)
        spec["embedding_size"] = int(spec["embedding_size"])

    @property
    def head_module(self):
        return f"{self.name}_head"

    def module_factories(self, num_classes):
        s = self.spec

        def net():
            from ..backbones.registry import get_model

            return get_model(s.network, dropout=0.0, fp16=bool(s.fp16), num_features=int(s.embedding_size))

        return {self.name: net, self.head_module: lambda: self.build_head(num_classes, int(s.embedding_size))}

    def embed(self, faces, ctx):
        return ctx.module(self.name)(faces)

    def restore(self, masked, ctx):
        return None

    def exports(self, models):
        return {f"{self.name}_model.pt": models.get(self.name).state_dict()}

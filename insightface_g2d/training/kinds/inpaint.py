"""The `inpaint` stage kind (G2D stage 1): encoder + decoder restore the clean face from the masked
one; a PatchGAN critic is trained in the same step with its own optimizer."""
import dataclasses
from typing import Optional

import torch

from ...errors import ConfigError
from ..checks import check_betas, check_number
from ..models import frozen
from .base import KindSettings
from .g2d import G2DStage, backbone_factory, require_g2d


@dataclasses.dataclass(frozen=True)
class InpaintSettings(KindSettings):
    optimizer: str = "adam"
    lr: float = 2e-4
    betas: tuple = (0.5, 0.9)
    weight_decay: float = 0.0
    d_lr: Optional[float] = None        # the critic's learning rate (None: lr)
    d_betas: Optional[tuple] = None     # the critic's Adam betas (None: betas)
    hole_weight: float = 6.0            # L1 weight of masked pixels (1 outside the mask)
    decoder_widths: Optional[tuple] = None  # 3 channel counts (28, 56, 112 px levels); None: the network's
    disc_widths: Optional[tuple] = None     # critic channel counts; None: PatchDiscriminator's


class InpaintStage(G2DStage):
    """Losses: masked-region-weighted L1, identity (1 - cos between teacher embeddings of restored
    and clean face), hinge adversarial."""

    kind = "inpaint"
    settings = InpaintSettings
    loss_weights = dict(l1=1.0, identity=0.1, adversarial=0.01)
    trainable = ("encoder", "decoder", "discriminator")
    allowed_train = ("encoder", "decoder", "discriminator")
    restores_faces = True
    primary_group = "generator"
    resume_applicable = ("d_lr", "d_betas", "hole_weight")

    @classmethod
    def resolve(cls, spec, cfg):
        out = super().resolve(spec, cfg)
        require_g2d(out, cfg)
        if out["losses"]["adversarial"] == 0:
            out["train"] = [m for m in out["train"] if m != "discriminator"]
        elif "discriminator" not in out["train"]:
            raise ConfigError(f"stage {out['name']!r}: the adversarial loss needs the discriminator trained; "
                              "add it to train or set losses.adversarial = 0")
        for key in ("decoder_widths", "disc_widths"):
            w = out.get(key)
            counts = isinstance(w, (list, tuple)) and all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in w)
            if w is not None and not counts:
                raise ConfigError(f"stage {out['name']!r}: {key} must be a list of channel counts, got {w!r}")
        if out["decoder_widths"] is not None and len(out["decoder_widths"]) != 3:
            raise ConfigError(f"stage {out['name']!r}: decoder_widths needs 3 numbers (28, 56, 112 px levels)")
        where = f"stage {out['name']!r}"
        check_number(out, "d_lr", where, 0, exclusive=True)
        check_number(out, "hole_weight", where, 0, allow_none=False)
        if out.get("d_betas") is not None:
            out["d_betas"] = check_betas(out["d_betas"], where, key="d_betas")
        return out

    def module_factories(self, num_classes):
        from ...backbones.g2d import PatchDiscriminator, build_inpainter

        s, network = self.spec, self.cfg.network

        def decoder():
            return build_inpainter(network, s.decoder_widths)

        def discriminator():
            return PatchDiscriminator(tuple(s.disc_widths)) if s.disc_widths else PatchDiscriminator()

        out = {**backbone_factory(self.cfg), "decoder": decoder}
        if "discriminator" in s.train:
            out["discriminator"] = discriminator
        return out

    def optimizer_groups(self):
        groups = {self.primary_group: [m for m in self.spec.train if m != "discriminator"]}
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

    def restore(self, masked, ctx):
        """The decoder's face from the encoder's descriptor."""
        return ctx.models.get("decoder")(ctx.models.get("encoder")(masked))

    def step(self, batch, ctx):
        from ...losses import hinge_d_loss, hinge_g_loss, identity_loss, masked_l1

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
        ctx.update(self.primary_group, terms, w)
        logs = dict(terms)
        if w["adversarial"]:
            logits = ctx.module("discriminator")(torch.cat([clean, restored.detach()])).float()
            real, fake = logits.chunk(2)
            d_terms = {"d_hinge": hinge_d_loss(real, fake)}
            ctx.update("discriminator", d_terms)
            logs.update(d_terms, d_real=real.mean().detach(), d_fake=fake.mean().detach())
        return logs

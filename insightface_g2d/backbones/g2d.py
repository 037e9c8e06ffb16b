"""G2D: generative encoder (from an inpainting network) + discriminative reformer.

    face (3 x 112 x 112) --encoder--> descriptor (C x 28 x 28) --reformer--> identity (F)

The encoder is the front half of a face-inpainting network: it sees a masked face and keeps what the
decoder needs to fill the mask in. Dilated residual blocks at 28 x 28 give it a receptive field that
spans the whole face, so the upper face can inform the descriptor of the hidden lower face.
The reformer is an IResNet-style stack (28 -> 14 -> 7) with IResNet's BN-dropout-FC-BN head.
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from .common import autocast_if
from .iresnet import EmbeddingHead, IBasicBlock, make_stage


@dataclass(frozen=True)
class G2DSpec:
    """Sizes of one G2D variant."""

    stem_channels: tuple = (32, 64)      # 112 -> 56 widths of the encoder stem
    descriptor_channels: int = 128       # C of the C x 28 x 28 descriptor
    encoder_dilations: tuple = (1, 2, 4, 8)  # one residual block per entry, at 28 x 28
    reformer_depths: tuple = (2, 6, 2)   # IBasicBlocks at 28, 14, 7
    reformer_widths: tuple = (128, 256, 512)


G2D_SPECS = {
    "g2d": G2DSpec(),
    "g2d_s": G2DSpec(stem_channels=(24, 48), descriptor_channels=96, encoder_dilations=(1, 2, 4),
                     reformer_depths=(1, 3, 1), reformer_widths=(96, 192, 384)),
    # tiny: for the CPU demo and tests, not for real training
    "g2d_t": G2DSpec(stem_channels=(16, 32), descriptor_channels=32, encoder_dilations=(1, 2),
                     reformer_depths=(1, 1, 1), reformer_widths=(32, 64, 128)),
    "g2d_l": G2DSpec(encoder_dilations=(1, 2, 4, 8, 1, 2), reformer_depths=(3, 13, 3)),
}


def conv_bn_prelu(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout)
    )


class GenerativeEncoder(nn.Module):
    """N x 3 x 112 x 112 -> N x C x 28 x 28 descriptor."""

    def __init__(self, spec: G2DSpec):
        super().__init__()
        c0, c1 = spec.stem_channels
        c = spec.descriptor_channels
        self.stem = nn.Sequential(
            conv_bn_prelu(3, c0),            # 112
            conv_bn_prelu(c0, c1, stride=2),  # 56
            conv_bn_prelu(c1, c, stride=2),   # 28
        )
        self.context = nn.Sequential(*[IBasicBlock(c, c, dilation=d) for d in spec.encoder_dilations])
        self.out_channels = c

    def forward(self, x):
        return self.context(self.stem(x))


class DiscriminativeReformer(nn.Module):
    """N x C x 28 x 28 descriptor -> N x num_features identity vector."""

    def __init__(self, spec: G2DSpec, num_features=512, dropout=0.0):
        super().__init__()
        widths, depths = spec.reformer_widths, spec.reformer_depths
        self.layer1 = make_stage(spec.descriptor_channels, widths[0], depths[0], stride=1)
        self.layer2 = make_stage(widths[0], widths[1], depths[1], stride=2)
        self.layer3 = make_stage(widths[1], widths[2], depths[2], stride=2)
        head = EmbeddingHead(widths[2], 7 * 7, num_features, dropout)
        self.bn2, self.dropout, self.fc, self.features = head.bn2, head.dropout, head.fc, head.features

    def trunk(self, desc):
        return self.dropout(torch.flatten(self.bn2(self.layer3(self.layer2(self.layer1(desc)))), 1))

    def forward(self, desc):
        return self.features(self.fc(self.trunk(desc)))


class G2DBackbone(nn.Module):
    """The drop-in backbone: N x 3 x 112 x 112 RGB in [-1, 1] -> N x num_features."""

    def __init__(self, spec: G2DSpec = G2DSpec(), num_features=512, dropout=0.0, fp16=False):
        super().__init__()
        self.spec = spec
        self.fp16 = fp16
        self.encoder = GenerativeEncoder(spec)
        self.reformer = DiscriminativeReformer(spec, num_features, dropout)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, x):
        """N x 3 x 112 x 112 -> N x C x 28 x 28 (float32)."""
        with autocast_if(self.fp16, x):
            return self.encoder(x).float()

    def reform(self, desc):
        """N x C x 28 x 28 -> N x num_features (float32)."""
        with autocast_if(self.fp16, desc):
            h = self.reformer.trunk(desc)
        return self.reformer.features(self.reformer.fc(h.float()))

    def forward(self, x):
        return self.reform(self.encode(x))


class InpaintingDecoder(nn.Module):
    """Descriptor N x C x 28 x 28 -> restored face N x 3 x 112 x 112 in [-1, 1].

    Trained with the encoder in the `inpaint` stage only; not part of the backbone. A descriptor of
    another size (an encoder cut from a pretrained network, e.g. 128 x 8 x 8) is first resized to
    28 x 28 (bilinear).
    """

    def __init__(self, descriptor_channels=128, widths=(128, 64, 32), descriptor_size=28):
        super().__init__()
        w0, w1, w2 = widths
        self.descriptor_size = int(descriptor_size)
        self.body = nn.Sequential(
            conv_bn_prelu(descriptor_channels, w0),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_bn_prelu(w0, w1),  # 56
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_bn_prelu(w1, w2),  # 112
            nn.Conv2d(w2, 3, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, desc):
        if desc.shape[-1] != 28 or desc.shape[-2] != 28:
            desc = nn.functional.interpolate(desc, size=(28, 28), mode="bilinear", align_corners=False)
        return self.body(desc)


class PatchDiscriminator(nn.Module):
    """Spectral-norm PatchGAN: N x 3 x 112 x 112 -> N x 1 x 14 x 14 real/fake logits."""

    def __init__(self, widths=(64, 128, 256)):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [spectral_norm(nn.Conv2d(cin, w, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            cin = w
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1)))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def build_g2d(name="g2d", dropout=0.0, num_features=512, fp16=False):
    return G2DBackbone(G2D_SPECS[name], num_features=num_features, dropout=dropout, fp16=fp16)


def descriptor_of(name):
    """(channels, size) of the descriptor of G2D network `name` for 112 x 112 faces; for a network
    cut from a pretrained one (g2d_r50, g2d_dlib, ...) measured on one blank face; a network seeing
    the upper face only (+upperR) has its network's descriptor."""
    from .upper_face import parse_upper_name

    upper = parse_upper_name(name)
    name = upper[0] if upper is not None else name
    if name in G2D_SPECS:
        return G2D_SPECS[name].descriptor_channels, 28
    from .split import build_split_g2d

    with torch.no_grad():
        desc = build_split_g2d(name).eval().encoder(torch.zeros(1, 3, 112, 112))
    return int(desc.shape[1]), int(desc.shape[2])


def build_inpainter(name="g2d", widths=None):
    """The inpainting decoder of G2D network `name` (default widths: 128, 64, 32)."""
    channels, size = descriptor_of(name)
    return InpaintingDecoder(channels, widths=tuple(widths or (128, 64, 32)), descriptor_size=size)


def build_discriminator():
    return PatchDiscriminator()

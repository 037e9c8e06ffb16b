"""MobileFaceNet (`mbf`) with arcface_torch's exact state-dict layout.

Every building block keeps its parameters in a `layers` Sequential, as arcface_torch does, so
its `backbone.pth` for `mbf` / `mbf_large` loads unchanged.
"""
from torch import nn

from .common import autocast_if


class ConvBNPReLU(nn.Module):
    def __init__(self, cin, cout, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
        )

    def forward(self, x):
        return self.layers(x)


class ConvBN(nn.Module):
    def __init__(self, cin, cout, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return self.layers(x)


class InvertedBottleneck(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection, optional identity shortcut."""

    def __init__(self, cin, cout, hidden, stride=1, residual=False):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBNPReLU(cin, hidden),
            ConvBNPReLU(hidden, hidden, 3, stride, 1, groups=hidden),
            ConvBN(hidden, cout),
        )

    def forward(self, x):
        out = self.layers(x)
        return x + out if self.residual else out


class ResidualStack(nn.Module):
    def __init__(self, channels, num_blocks, hidden):
        super().__init__()
        self.layers = nn.Sequential(
            *[InvertedBottleneck(channels, channels, hidden, residual=True) for _ in range(num_blocks)]
        )

    def forward(self, x):
        return self.layers(x)


class GlobalDepthwiseHead(nn.Module):
    """7x7 depthwise conv (global pooling with learned weights) -> FC -> BN1d."""

    def __init__(self, num_features):
        super().__init__()
        self.layers = nn.Sequential(
            ConvBN(512, 512, 7, groups=512),
            nn.Flatten(),
            nn.Linear(512, num_features, bias=False),
            nn.BatchNorm1d(num_features),
        )

    def forward(self, x):
        return self.layers(x)


class MobileFaceNet(nn.Module):
    """N x 3 x 112 x 112 in [-1, 1] -> N x num_features."""

    def __init__(self, num_features=512, blocks=(1, 4, 6, 2), scale=2, fp16=False):
        super().__init__()
        self.fp16 = fp16
        c1, c2 = 64 * scale, 128 * scale
        self.layers = nn.ModuleList([ConvBNPReLU(3, c1, 3, 2, 1)])
        if blocks[0] == 1:
            self.layers.append(ConvBNPReLU(c1, c1, 3, 1, 1, groups=64))
        else:
            self.layers.append(ResidualStack(c1, blocks[0], 128))
        self.layers.extend([
            InvertedBottleneck(c1, c1, 128, stride=2),
            ResidualStack(c1, blocks[1], 128),
            InvertedBottleneck(c1, c2, 256, stride=2),
            ResidualStack(c2, blocks[2], 256),
            InvertedBottleneck(c2, c2, 512, stride=2),
            ResidualStack(c2, blocks[3], 256),
        ])
        self.conv_sep = ConvBNPReLU(c2, 512)
        self.features = GlobalDepthwiseHead(num_features)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        with autocast_if(self.fp16, x):
            for layer in self.layers:
                x = layer(x)
        return self.features(self.conv_sep(x.float()))


def build_mobilefacenet(name, dropout=0.0, num_features=512, fp16=False):
    if name == "mbf_large":
        return MobileFaceNet(num_features, blocks=(2, 8, 12, 4), scale=4, fp16=fp16)
    return MobileFaceNet(num_features, fp16=fp16)

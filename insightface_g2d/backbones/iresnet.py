"""IResNet teachers (r18..r200) with arcface_torch's exact state-dict layout.

Parameter names match arcface_torch's `backbones/iresnet.py`, so its released
`backbone.pth` files load unchanged: `conv1, bn1, prelu, layer1..layer4, bn2, fc, features`.
"""
import torch
from torch import nn

from .common import autocast_if

IRESNET_DEPTHS = {
    "r18": (2, 2, 2, 2),
    "r34": (3, 4, 6, 3),
    "r50": (3, 4, 14, 3),
    "r100": (3, 13, 30, 3),
    "r200": (6, 26, 60, 6),
}


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN-conv-BN-PReLU-conv(stride)-BN plus shortcut (the "improved" pre-activation block)."""

    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5)
            )

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def make_stage(cin, cout, num_blocks, stride):
    blocks = [IBasicBlock(cin, cout, stride)]
    blocks += [IBasicBlock(cout, cout) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class EmbeddingHead(nn.Module):
    """BN - dropout - FC - BN1d, the IResNet head. `features.weight` is fixed at 1 as in arcface_torch."""

    def __init__(self, channels, spatial, num_features, dropout):
        super().__init__()
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels * spatial, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False


class IResNet(nn.Module):
    """N x 3 x 112 x 112 in [-1, 1] -> N x num_features."""

    def __init__(self, depths, dropout=0.0, num_features=512, fp16=False):
        super().__init__()
        self.fp16 = fp16
        self.conv1 = conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        widths = (64, 128, 256, 512)
        cin = 64
        for i, (width, depth) in enumerate(zip(widths, depths)):
            setattr(self, f"layer{i + 1}", make_stage(cin, width, depth, stride=2))
            cin = width
        head = EmbeddingHead(512, 7 * 7, num_features, dropout)
        # Flattened onto the model so the state-dict keys are arcface_torch's (bn2, fc, features).
        self.bn2, self.dropout, self.fc, self.features = head.bn2, head.dropout, head.fc, head.features
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    # The forward pass as named steps, for cutting the network in two (backbones/split.py): the
    # steps up to `layer2` give 128 x 28 x 28, G2D's descriptor.
    STEPS = ("conv1", "bn1", "prelu", "layer1", "layer2", "layer3", "layer4", "bn2", "dropout", "fc", "features")

    @staticmethod
    def run_step(owner, name, x):
        """Step `name` of the forward pass on `x`, with `owner`'s module of that name."""
        if name == "dropout":
            return owner.dropout(torch.flatten(x, 1))
        if name == "fc":
            return owner.fc(x.float())
        return getattr(owner, name)(x)

    def forward(self, x):
        with autocast_if(self.fp16, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x.float()))


def build_iresnet(name, dropout=0.0, num_features=512, fp16=False):
    return IResNet(IRESNET_DEPTHS[name], dropout=dropout, num_features=num_features, fp16=fp16)

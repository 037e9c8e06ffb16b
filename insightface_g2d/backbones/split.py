"""G2D from a pretrained face network: its encoder and reformer are the front and the back of the
network cut after a named step of its forward pass.

    face --[steps up to SPLIT: encoder]--> descriptor --[the remaining steps: reformer]--> embedding

A network can be cut when its class lists its forward pass as `STEPS` and runs one step with
`run_step(owner, name, x)` (IResNet r18-r200, dlib's ResNet). The parts keep the network's own
module names, so their state dicts are the network's, prefixed by `encoder.` or `reformer.`:
`split_state_dict` maps a whole network's checkpoint onto them and back, tensor for tensor, and
with untouched weights the split network computes exactly the whole network's embedding.

Names: `g2d_<network>` cuts at the network's default split (IResNet: after layer2, 128 x 28 x 28,
G2D's own descriptor; dlib's ResNet: after layer2, 64 x 17 x 17), `g2d_<network>@<step>` after any
step, e.g. `g2d_r50@layer3` or `g2d_dlib@layer3`.
"""
import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, suggest

PREFIX = "g2d_"
DEFAULT_SPLITS = {"r18": "layer2", "r34": "layer2", "r50": "layer2", "r100": "layer2", "r200": "layer2",
                  "dlib": "layer2"}
BASE_NETWORKS = {"dlib": "dlib_resnet"}  # short names in g2d_<name> -> get_model names


class NetworkPart(nn.Module):
    """Steps `steps` of a network's forward pass, with the network's modules for them under their own
    names; `run_step` is the network class's."""

    def __init__(self, network, steps):
        super().__init__()
        self.steps = tuple(steps)
        self.run_step = type(network).run_step
        for name in self.steps:
            module = getattr(network, name, None)
            if isinstance(module, nn.Module):
                self.add_module(name, module)

    def forward(self, x):
        for name in self.steps:
            x = self.run_step(self, name, x)
        return x


class SplitG2D(nn.Module):
    """A G2D backbone cut from `network` after step `split`: N x 3 x 112 x 112 -> N x num_features,
    with G2DBackbone's interface (encoder, reformer, encode, reform)."""

    def __init__(self, network, split, dropout=0.0, num_features=512):
        super().__init__()
        whole = _build_whole(network, dropout=dropout, num_features=num_features)
        steps = type(whole).STEPS
        if split not in steps[:-1]:
            raise ConfigError(f"cannot cut {network!r} after {split!r}{suggest(split, steps[:-1])}; "
                              f"its steps: {', '.join(steps[:-1])}")
        cut = steps.index(split) + 1
        self.network, self.split = network, split
        self.encoder = NetworkPart(whole, steps[:cut])
        self.reformer = NetworkPart(whole, steps[cut:])

    def encode(self, x):
        return self.encoder(x).float()

    def reform(self, desc):
        return self.reformer(desc).float()

    def forward(self, x):
        return self.reform(self.encode(x))


def _steps_of(network):
    from .dlib_resnet import DlibResNet
    from .iresnet import IResNet

    return DlibResNet.STEPS if network == "dlib_resnet" else IResNet.STEPS


def _build_whole(network, dropout, num_features):
    from .dlib_resnet import build_dlib_resnet
    from .iresnet import build_iresnet

    build = build_dlib_resnet if network == "dlib_resnet" else build_iresnet
    return build(network, dropout=dropout, num_features=num_features)


def parse_split_name(name):
    """'g2d_r50' -> ('r50', 'layer2'); 'g2d_dlib@layer2' -> ('dlib_resnet', 'layer2'); None when
    `name` is not a split-network name; ConfigError when it names a step the network does not have."""
    if not isinstance(name, str) or not name.startswith(PREFIX):
        return None
    short, _, split = name[len(PREFIX):].partition("@")
    if short not in DEFAULT_SPLITS:
        return None
    network = BASE_NETWORKS.get(short, short)
    split = split or DEFAULT_SPLITS[short]
    steps = _steps_of(network)[:-1]
    if split not in steps:
        raise ConfigError(f"network {name!r}: {network} cannot be cut after {split!r}{suggest(split, steps)}; "
                          f"its steps: {', '.join(steps)}")
    return network, split


def split_names():
    """The split-network names get_model lists (each at its default split)."""
    return [PREFIX + short for short in DEFAULT_SPLITS]


def build_split_g2d(name, dropout=0.0, num_features=512, fp16=False):
    network, split = parse_split_name(name)
    return SplitG2D(network, split, dropout=dropout, num_features=num_features)


def split_state_dict(model, state):
    """A whole network's state dict (the network `model` was cut from) -> `model`'s state dict:
    every tensor under `encoder.` or `reformer.`, by the step its top-level module belongs to.
    CheckpointError naming the first tensors left unmapped, missing, or of the wrong shape."""
    front = set(model.encoder.steps)
    back = set(model.reformer.steps)
    mapped, unmapped = {}, []
    for key, value in state.items():
        top = key.split(".", 1)[0]
        part = "encoder" if top in front else "reformer" if top in back else None
        if part is None:
            unmapped.append(key)
        else:
            mapped[f"{part}.{key}"] = value
    expected = model.state_dict()
    missing = [k for k in expected if k not in mapped]
    unexpected = [k for k in mapped if k not in expected]
    shapes = [f"{k} {tuple(mapped[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in mapped and tuple(mapped[k].shape) != tuple(v.shape)]
    problems = []
    if unmapped or unexpected:
        names = unmapped + [k.split(".", 1)[1] for k in unexpected]
        problems.append(f"{len(names)} tensor(s) map to no part of g2d_{model.network}@{model.split} "
                        f"(first: {', '.join(names[:3])})")
    if missing:
        problems.append(f"{len(missing)} tensor(s) of the split network are not in it (first: "
                        f"{', '.join(missing[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} of the wrong shape (first: {'; '.join(shapes[:3])}; checkpoint vs network)")
    if problems:
        raise CheckpointError(f"checkpoint is not a {model.network} network: " + "; ".join(problems)
                              + ". Check the network name and embedding size.")
    return mapped


def whole_state_dict(model):
    """`model`'s (a SplitG2D) state dict as the whole network's: prefixes removed."""
    return {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}

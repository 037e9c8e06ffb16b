"""A frozen PyTorch face recognizer (arcface_torch IResNet, MobileFaceNet, ...) used as a teacher."""
import os

import torch

from ..errors import CheckpointError, ConfigError

# Where the embedding size can be read from a state dict, per network family.
_EMBEDDING_KEYS = ("features.weight", "reformer.features.weight", "features.layers.3.weight")


def embedding_size_of(state, default=512):
    """The embedding size a backbone state dict was trained with (its final BatchNorm1d)."""
    for key in _EMBEDDING_KEYS:
        value = state.get(key)
        if torch.is_tensor(value) and value.dim() == 1:
            return int(value.shape[0])
    return default


class TorchTeacher:
    """Frozen network: embed(clean N x 3 x 112 x 112 in [-1, 1]) -> N x dim float32.

    Always in eval mode with its weights frozen. By default `embed` runs without autograd; with
    `differentiable=True` gradients flow through it to its input (for the inpainting stage's identity
    loss) while its own weights stay frozen.
    """

    def __init__(self, network, checkpoint, device="cpu", num_features=None, differentiable=False, fp16=False):
        from ..backbones import get_model, load_backbone_weights
        from ..backbones.checkpoint import read_state_dict

        if checkpoint is None or not os.path.isfile(os.fspath(checkpoint)):
            raise CheckpointError(
                f"teacher checkpoint {checkpoint!r} does not exist: pass the arcface_torch backbone.pth of "
                f"the {network!r} teacher (e.g. ms1mv3_arcface_r100_fp16/backbone.pth)"
            )
        state = read_state_dict(checkpoint)
        if num_features is None:
            num_features = embedding_size_of(state)
        try:
            model = get_model(network, dropout=0.0, fp16=fp16, num_features=num_features)
        except ValueError as err:
            raise ConfigError(f"teacher network: {err}") from None
        try:
            load_backbone_weights(model, state, network)
        except CheckpointError as err:
            raise CheckpointError(f"teacher checkpoint {os.fspath(checkpoint)!r}: {err}") from None
        folder = os.path.basename(os.path.dirname(os.path.abspath(checkpoint)))
        self._setup(model, f"{network}:{folder}/{os.path.basename(checkpoint)}", device, differentiable,
                    dim=num_features)
        self.network, self.checkpoint = network, os.fspath(checkpoint)

    @classmethod
    def from_module(cls, model, name=None, device=None, differentiable=False):
        """Wrap an already-built network (its weights are frozen in place)."""
        self = cls.__new__(cls)
        if device is None:
            params = list(model.parameters())
            device = params[0].device if params else "cpu"
        self._setup(model, name or type(model).__name__, device, differentiable)
        self.network, self.checkpoint = None, None
        return self

    def _setup(self, model, name, device, differentiable, dim=None):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model.to(device)
        self.device = torch.device(device)
        self.name = name
        self.differentiable = bool(differentiable)
        if dim is None:
            with torch.no_grad():
                dim = self.model(torch.zeros(1, 3, 112, 112, device=self.device)).shape[1]
        self.dim = int(dim)

    def to(self, device):
        self.model.to(device)
        self.device = torch.device(device)
        return self

    def embed(self, clean):
        """N x 3 x 112 x 112 in [-1, 1] -> N x dim float32 on the input's device."""
        x = clean.to(self.device)
        self.model.eval()  # in case someone called .train() on the wrapped network
        if self.differentiable:
            out = self.model(x)
        else:
            with torch.no_grad():
                out = self.model(x)
        return out.float().to(clean.device)

    __call__ = embed

    def __repr__(self):
        return f"TorchTeacher({self.name!r}, dim={self.dim}, device={self.device})"

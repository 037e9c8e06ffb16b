"""PyTorch face networks: TorchEmbedder wraps any nn.Module; the "network" type (TorchNetwork) builds
one of `get_model`'s networks from a checkpoint (backbone.pth, model.pt, a stage or resume checkpoint).

Spec: dict(network="r100", checkpoint="ms1mv3_arcface_r100_fp16/backbone.pth"[, num_features, fp16])
or the string "NETWORK:CHECKPOINT". A network without weights is refused, since its scores would
mean nothing; random weights (smoke tests) are asked for by name: "NETWORK:random" or
dict(network=..., random_weights=True). "dlib_resnet" alone is dlib's network with dlib's own
weights (the installed model file of the [dlib] extra).
The embedding size is read from the checkpoint (`embedding_size_of`) unless num_features says it.
"""
import contextlib
import os

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, suggest
from .base import FaceEmbedder

RANDOM = "random"             # NETWORK:random asks for random weights by name
DLIB_NETWORK = "dlib_resnet"  # without a checkpoint: dlib's own weights, from the installed model file


def _is_dlib_network(value):
    """dlib_resnet, or dlib_resnet seeing the upper face only (dlib_resnet+upperR): dlib's weights
    when no checkpoint is given."""
    from ..backbones.upper_face import parse_upper_name

    upper = parse_upper_name(value)
    return (upper[0] if upper is not None else value) == DLIB_NETWORK


def _known_network(network):
    from ..backbones.registry import is_model, list_models

    if not is_model(network):
        raise ConfigError(f"unknown network {network!r}{suggest(str(network), list_models())}; "
                          f"known: {', '.join(list_models())}")


def embedding_size_of(network, state, default=512):
    """The embedding size a state dict of `network` was trained with: the length of its last
    BatchNorm1d's running mean, or of its last Linear layer's output when it ends without one (the
    network is laid out on the meta device: no memory, no RNG)."""
    from ..backbones.registry import get_model

    with torch.device("meta"):
        model = get_model(network, num_features=default)
    key = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            key = f"{name}.running_mean"
        elif isinstance(module, torch.nn.Linear):
            key = f"{name}.weight"
    value = state.get(key) if key else None
    if torch.is_tensor(value) and value.dim() in (1, 2):
        return int(value.shape[0])
    return default


def build_network(network, checkpoint=None, num_features=None, fp16=False):
    """get_model(network) with the weights of `checkpoint` (random weights without one)."""
    return _build_sized_network(network, checkpoint, num_features, fp16)[0]


def _build_sized_network(network, checkpoint, num_features, fp16):
    """(build_network's model, its embedding size)."""
    from ..backbones.checkpoint import load_backbone_weights, read_state_dict
    from ..backbones.registry import get_model

    _known_network(network)
    state = None
    if checkpoint is not None:
        if not os.path.isfile(os.fspath(checkpoint)):
            raise CheckpointError(
                f"checkpoint {os.fspath(checkpoint)!r} of network {network!r} does not exist: pass its trained "
                "weights (an arcface_torch backbone.pth, a g2d-train model.pt or stage checkpoint)")
        state = read_state_dict(checkpoint)
        if num_features is None:
            num_features = embedding_size_of(network, state)
    num_features = num_features or 512
    try:
        model = get_model(network, dropout=0.0, fp16=bool(fp16), num_features=num_features)
    except ValueError as err:
        raise ConfigError(f"network {network!r}: {err}") from None
    if state is not None:
        try:
            load_backbone_weights(model, state, network)
        except CheckpointError as err:
            raise CheckpointError(f"checkpoint {os.fspath(checkpoint)!r}: {err}") from None
    return model, num_features


class TorchEmbedder(FaceEmbedder):
    """An nn.Module as a face embedder, always in eval mode with its weights frozen.

    Without `differentiable` it runs under no_grad; with it gradients flow to the faces (the
    inpainting stage's identity loss) while the weights stay frozen.
    channels_last: feed batches in channels-last memory layout (None: on CPU only). oneDNN's CPU
    convolutions are about 1.2-1.5x faster that way; teachers keep the default layout (False) so
    training targets stay bit-for-bit what they were.
    """

    def __init__(self, model, device=None, name=None, differentiable=False, channels_last=None):
        if device is None:
            params = list(model.parameters())
            device = params[0].device if params else "cpu"
        super().__init__(name or type(model).__name__, device, differentiable=differentiable)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model.to(self.device)
        self.channels_last = self.device.type == "cpu" if channels_last is None else bool(channels_last)
        self.network = self.checkpoint = None
        # a network whose input stage declares how it takes uint8 photos (dlib's chip, made as dlib makes it)
        self.prepare_images = next((m.prepare_images for m in model.modules() if hasattr(m, "prepare_images")), None)

    @classmethod
    def from_checkpoint(cls, network, checkpoint=None, device="cpu", num_features=None, fp16=False,
                        differentiable=False, channels_last=None):
        """`build_network` wrapped; named NETWORK:FOLDER/FILE (a teacher cache records this name)."""
        model, dim = _build_sized_network(network, checkpoint, num_features, fp16)
        name = network
        if checkpoint is not None:
            folder = os.path.basename(os.path.dirname(os.path.abspath(checkpoint)))
            name = f"{network}:{folder}/{os.path.basename(checkpoint)}"
        self = cls(model, device, name, differentiable, channels_last)
        self._dim = dim
        self.network, self.checkpoint = network, None if checkpoint is None else os.fspath(checkpoint)
        return self

    def embed_uint8(self, images, flip=False):
        """uint8 faces -> embeddings; a network that prepares its own input from uint8 faces (dlib's
        ResNet: the chip as dlib makes it) gets them that way, the mirror images prepared alike."""
        if self.prepare_images is None:
            return super().embed_uint8(images, flip)
        emb = self.embed(self.prepare_images(images).to(self.device))
        if flip:
            emb = emb + self.embed(self.prepare_images(np.ascontiguousarray(images[:, :, ::-1])).to(self.device))
        return emb.cpu()

    def forward(self, faces):
        fmt = torch.channels_last if self.channels_last and faces.dim() == 4 else torch.preserve_format
        x = faces.to(self.device, memory_format=fmt)
        self.model.eval()  # in case someone called .train() on the wrapped network
        with contextlib.nullcontext() if self.differentiable else torch.no_grad():
            out = self.model(x)
        if isinstance(out, (tuple, list)):  # some networks return (embedding, extras)
            out = out[0]
        return out

    def to(self, device):
        self.model.to(device)
        return super().to(device)


class TorchNetwork(TorchEmbedder):
    """The "network" type: one of `get_model`'s networks with the weights of a checkpoint."""

    options = ("checkpoint", "num_features", "fp16", "random_weights")
    string_form = ("NETWORK:CHECKPOINT (e.g. r100:ms1mv3_arcface_r100_fp16/backbone.pth; "
                   "NETWORK:random for random weights)")

    @classmethod
    def parse_string(cls, key, text):
        from ..backbones.registry import is_model

        network, sep, checkpoint = text.partition(":")
        if not is_model(network):
            return None
        if checkpoint == RANDOM:
            return {key: network, "random_weights": True}
        return {key: network, "checkpoint": checkpoint} if sep and checkpoint else {key: network}

    @classmethod
    def spellings(cls, key):
        from ..backbones.registry import list_models

        return tuple(list_models())

    @classmethod
    def check_files(cls, value, options, where):
        checkpoint = options.get("checkpoint")
        if not checkpoint and _is_dlib_network(value):
            from ..backbones.dlib_resnet import default_model_file

            default_model_file()
            return
        if not checkpoint:
            raise ConfigError(
                f"{where}: config.teacher names network {value!r} but no checkpoint; set config.teacher.checkpoint to "
                "its arcface_torch backbone.pth (e.g. ms1mv3_arcface_r100_fp16/backbone.pth)")
        if not os.path.isfile(os.fspath(checkpoint)):
            raise CheckpointError(f"teacher checkpoint {os.fspath(checkpoint)!r} ({where}) does not exist; download it "
                                  "or fix config.teacher")

    @classmethod
    def from_spec(cls, value, options, ctx):
        checkpoint = options.get("checkpoint")
        if checkpoint is None and _is_dlib_network(value):
            from ..backbones.dlib_resnet import default_model_file

            checkpoint = default_model_file()  # ConfigError with the install line when it is missing
        if ctx.purpose == "teacher" and checkpoint is None:
            raise ConfigError(f"teacher network {value!r} has no checkpoint: a teacher needs trained weights "
                              "(checkpoint=.../backbone.pth, or the string NETWORK:CHECKPOINT)")
        if checkpoint is None and not options.get("random_weights"):
            raise ConfigError(f"network {value!r} has no weights: pass its checkpoint as {value}:PATH (e.g. "
                              f"{value}:work_dirs/run/model.pt or an arcface_torch backbone.pth), or {value}:random "
                              "for random weights (smoke tests only)")
        return cls.from_checkpoint(value, checkpoint, device=ctx.device, num_features=options.get("num_features"),
                                   fp16=options.get("fp16", False), differentiable=ctx.differentiable,
                                   channels_last=ctx.channels_last)

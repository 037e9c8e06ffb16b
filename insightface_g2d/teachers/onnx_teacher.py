"""A face recognizer in ONNX (e.g. an insightface model pack's recognition model) used as a teacher.

IO convention of insightface recognition models: input N x 3 x 112 x 112 float RGB normalised as
(pixel - 127.5) / 127.5 -- exactly this project's [-1, 1] face tensor -- output N x D. Older models
converted from mxnet normalise inside the graph and take raw 0..255 pixels instead; they are told
apart the way insightface's ArcFaceONNX does (a Sub and a Mul node, named "Sub*"/"_minus*" and
"Mul*"/"_mul*", among the first 8 nodes), so a model pack gives the same embeddings here as there.
"""
import torch

from ..errors import CheckpointError, ConfigError
from ..evaluation.embedder import OnnxEmbedder

_RANGES = {"pm1": "[-1,1]", "pixel": "[0,255]"}  # this module's names -> OnnxEmbedder's


class OnnxTeacher:
    """embed(clean N x 3 x 112 x 112 in [-1, 1]) -> N x dim float32 tensor, through onnxruntime.

    input_range: "auto" (detect as above), "pm1" ([-1, 1] input) or "pixel" (0..255 input).
    Runs on CUDAExecutionProvider on `device`'s GPU (its index as device_id) when `device` is a CUDA
    device and onnxruntime has it, else on CPU.
    The session (range detection, fixed batch size) is evaluation.embedder's OnnxEmbedder.
    """

    differentiable = False

    def __init__(self, path, device="cpu", input_range="auto", differentiable=False):
        if differentiable:
            raise ConfigError(
                "an ONNX teacher cannot pass gradients to its input; for the inpainting stage's identity "
                "loss use a PyTorch teacher (network + checkpoint)"
            )
        if input_range not in ("auto", "pm1", "pixel"):
            raise ConfigError(f"input_range must be 'auto', 'pm1' or 'pixel', got {input_range!r}")
        self.device = torch.device(device)
        self._open(path, _RANGES.get(input_range, "auto"))
        self.path, self.name = self.embedder.path, self.embedder.name
        self.input_range = "pixel" if self.embedder.input_range == "[0,255]" else "pm1"
        self.dim = int(self.embedder(torch.zeros(1, 3, 112, 112)).shape[1])

    def _open(self, path, input_range):
        model = OnnxEmbedder(path, input_range=input_range, device=self.device, what="ONNX teacher")
        shape = model.input_shape
        if len(model.session.get_inputs()) != 1 or len(shape) != 4 or shape[1] not in (3, "3") or any(
            isinstance(s, int) and s != 112 for s in shape[2:]
        ):
            raise CheckpointError(
                f"ONNX teacher {model.path!r} takes input {shape}; expected one N x 3 x 112 x 112 input (an aligned face)"
            )
        self.embedder = model

    @property
    def fixed_batch(self):
        return self.embedder.fixed_batch

    def to(self, device):
        device = torch.device(device)
        if device != self.device:  # another GPU is another session (providers carry the device_id)
            self.device = device
            self._open(self.path, self.embedder.input_range)
        self.device = device
        return self

    def embed(self, clean):
        """N x 3 x 112 x 112 in [-1, 1] -> N x dim float32 tensor on the input's device (no grad)."""
        return torch.from_numpy(self.embedder(clean)).to(clean.device)

    __call__ = embed

    def __repr__(self):
        return f"OnnxTeacher({self.name!r}, dim={self.dim}, input={self.input_range})"

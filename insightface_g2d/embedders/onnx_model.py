"""A face recognizer in ONNX (an insightface model pack's recognition model, a g2d-eval export-onnx
file) on onnxruntime: the "onnx" type, dict(onnx="model.onnx"[, input_range]) or "model.onnx".

IO convention of insightface recognition models: input N x 3 x 112 x 112 float RGB normalised as
(pixel - 127.5) / 127.5 -- exactly this project's [-1, 1] face tensor -- output N x D. Older models
converted from mxnet normalise inside the graph and take raw 0..255 pixels instead; they are told
apart the way insightface's ArcFaceONNX does (a Sub and a Mul node, named "Sub*"/"_minus*" and
"Mul*"/"_mul*", among the first 8 nodes), so a model pack gives the same embeddings here as there.
NHWC inputs (detected from the input shape) are fed transposed; a fixed batch dimension is honoured
by running padded chunks of that size.
"""
import os
import warnings

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from .base import FaceEmbedder

INPUT_RANGES = ("auto", "pm1", "pixel")  # pm1: [-1, 1] input; pixel: 0..255 input
MXNET_PREFIXES = (("Sub", "_minus"), ("Mul", "_mul"))  # node names of in-graph (x - 127.5) / 128
_NEEDS_ONNX = "ONNX models need onnx and onnxruntime: pip install onnx onnxruntime"


def normalises_inside(graph):
    """True when a node named Sub*/_minus* and one named Mul*/_mul* are among the graph's first 8
    nodes: insightface's ArcFaceONNX test for a model that normalises its own 0..255 input."""
    names = [(n.name or "") for n in graph.node[:8]]
    return all(any(n.startswith(prefix) for n in names) for prefix in MXNET_PREFIXES)


def onnx_input_range(path):
    """'pixel' when the graph normalises its own 0..255 input (`normalises_inside`: models converted
    from mxnet, insightface's model zoo), else 'pm1' (arcface_torch's torch2onnx exports and ours)."""
    import onnx

    return "pixel" if normalises_inside(onnx.load(path, load_external_data=False).graph) else "pm1"


def onnx_providers(device, available):
    """onnxruntime providers for torch `device`, given the `available` provider names.

    A CUDA device gets CUDAExecutionProvider with its own index as `device_id` (under torchrun each
    rank's cuda:LOCAL_RANK; without it every process would run on GPU 0), then the CPU provider.
    """
    device = torch.device(device)
    if device.type != "cuda" or "CUDAExecutionProvider" not in available:
        return ["CPUExecutionProvider"]
    index = device.index
    if index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]


def _face_input(shape):
    """True for an N x 3 x 112 x 112 or N x 112 x 112 x 3 input (symbolic sizes allowed)."""
    def fits(dims, want):
        return all(not isinstance(d, int) or d == w for d, w in zip(dims, want))

    return len(shape) == 4 and (fits(shape[1:], (3, 112, 112)) or fits(shape[1:], (112, 112, 3)))


class OnnxEmbedder(FaceEmbedder):
    """An ONNX face model on onnxruntime; no gradients (a teacher for the relational losses only).

    input_range: "auto" (detect as the module doc says), "pm1" or "pixel". A CUDA `device` runs
    on CUDAExecutionProvider on that GPU (`onnx_providers`) when onnxruntime has it, otherwise (with
    a warning) on the CPU.
    """

    options = ("input_range",)
    string_form = "a .onnx file"

    def __init__(self, path, device="cpu", input_range="auto", differentiable=False, threads=None):
        if differentiable:
            raise ConfigError(
                "an ONNX model cannot pass gradients to its input; for the inpainting stage's identity "
                "loss use a PyTorch teacher (network + checkpoint)")
        if input_range not in INPUT_RANGES:
            raise ConfigError(f"input_range must be 'auto', 'pm1' or 'pixel', got {input_range!r}")
        path = os.fspath(path)
        super().__init__(os.path.basename(path), device)
        self.path, self.threads = path, threads
        self._open(input_range)

    @classmethod
    def parse_string(cls, key, text):
        return {key: text} if text.lower().endswith(".onnx") else None

    @classmethod
    def check_files(cls, value, options, where):
        if not os.path.isfile(os.fspath(value)):
            raise CheckpointError(f"teacher onnx {os.fspath(value)!r} ({where}) does not exist; download it or fix "
                                  "config.teacher")

    @classmethod
    def from_spec(cls, value, options, ctx):
        return cls(value, device=ctx.device, input_range=options.get("input_range", "auto"),
                   differentiable=ctx.differentiable)

    def _open(self, input_range):
        path = self.path
        if not os.path.isfile(path):
            raise CheckpointError(f"ONNX model {path!r} does not exist (expected a recognition .onnx file)")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(_NEEDS_ONNX) from None
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        providers = onnx_providers(self.device, ort.get_available_providers())
        if self.device.type == "cuda" and providers == ["CPUExecutionProvider"]:
            warnings.warn(f"ONNX model {self.name!r} runs on the CPU: this onnxruntime has no "
                          "CUDAExecutionProvider (install onnxruntime-gpu to run it on the GPU)", stacklevel=3)
        try:
            self.input_range = onnx_input_range(path) if input_range == "auto" else input_range
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except ImportError:
            raise ConfigError(_NEEDS_ONNX) from None
        except Exception as err:  # onnx and onnxruntime raise their own exception types
            raise CheckpointError(f"cannot read ONNX model {path!r}: {str(err).splitlines()[0]}") from None
        self.providers = providers
        inputs = self.session.get_inputs()
        shape = list(inputs[0].shape)
        if len(inputs) != 1 or not _face_input(shape):
            raise CheckpointError(f"ONNX model {path!r} takes input {shape}; expected one N x 3 x 112 x 112 "
                                  "(or N x 112 x 112 x 3) input, an aligned face")
        self.input_name, self.input_shape = inputs[0].name, shape
        self.output_name = self.session.get_outputs()[0].name
        self.nhwc = shape[1] != 3 and shape[3] == 3
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def _run(self, x):
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def forward(self, faces):
        x = faces.detach().float().cpu().numpy()
        if self.input_range == "pixel":
            x = x * 127.5 + 127.5
        if self.nhwc:
            x = x.transpose(0, 2, 3, 1)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.fixed_batch is None or self.fixed_batch == len(x):
            out = self._run(x)
        else:
            b = self.fixed_batch
            chunks = []
            for i in range(0, len(x), b):
                part = x[i:i + b]
                n = len(part)
                if n < b:  # pad the last chunk to the model's fixed batch size
                    part = np.concatenate([part, np.repeat(part[-1:], b - n, axis=0)])
                chunks.append(self._run(part)[:n])
            out = np.concatenate(chunks)
        return torch.from_numpy(np.asarray(out, dtype=np.float32).reshape(len(x), -1))

    def to(self, device):
        device = torch.device(device)
        if device != self.device:  # another GPU is another session (providers carry the device_id)
            self.device = device
            self._open(self.input_range)
        return self

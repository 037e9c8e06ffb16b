"""A face recognizer in ONNX (e.g. an insightface model pack's recognition model) used as a teacher.

IO convention of insightface recognition models: input N x 3 x 112 x 112 float RGB normalised as
(pixel - 127.5) / 127.5 -- exactly this project's [-1, 1] face tensor -- output N x D. Older models
converted from mxnet normalise inside the graph and take raw 0..255 pixels instead; they are told
apart the way insightface's ArcFaceONNX does (a Sub and a Mul node, named "Sub*"/"_minus*" and
"Mul*"/"_mul*", among the first 8 nodes), so a model pack gives the same embeddings here as there.
"""
import os

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError


def _normalises_inside(model_proto):
    names = [node.name for node in model_proto.graph.node[:8]]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return has_sub and has_mul


class OnnxTeacher:
    """embed(clean N x 3 x 112 x 112 in [-1, 1]) -> N x dim float32 tensor, through onnxruntime.

    input_range: "auto" (detect as above), "pm1" ([-1, 1] input) or "pixel" (0..255 input).
    Runs on CUDAExecutionProvider when `device` is a CUDA device and onnxruntime has it, else on CPU.
    """

    differentiable = False

    def __init__(self, path, device="cpu", input_range="auto", differentiable=False):
        if differentiable:
            raise ConfigError(
                "an ONNX teacher cannot pass gradients to its input; for the inpainting stage's identity "
                "loss use a PyTorch teacher (network + checkpoint)"
            )
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise CheckpointError(f"ONNX teacher {path!r} does not exist (expected a recognition .onnx file)")
        try:
            import onnx
            import onnxruntime
        except ImportError:
            raise ConfigError("ONNX teachers need onnx and onnxruntime: pip install onnx onnxruntime") from None
        try:
            proto = onnx.load(path)
        except Exception as err:
            raise CheckpointError(f"cannot read ONNX model {path!r}: {str(err).splitlines()[0]}") from None
        if input_range not in ("auto", "pm1", "pixel"):
            raise ConfigError(f"input_range must be 'auto', 'pm1' or 'pixel', got {input_range!r}")
        if input_range == "auto":
            input_range = "pixel" if _normalises_inside(proto) else "pm1"
        self.input_range = input_range
        self.path, self.name = path, os.path.basename(path)
        self._ort = onnxruntime
        self.device = torch.device(device)
        self._open_session(proto)

    def _open_session(self, proto):
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in self._ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = self._ort.InferenceSession(proto.SerializeToString(), providers=providers)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise CheckpointError(f"ONNX teacher {self.path!r} must have one input and an embedding output")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] not in (3, "3") or any(isinstance(s, int) and s != 112 for s in shape[2:]):
            raise CheckpointError(
                f"ONNX teacher {self.path!r} takes input {shape}; expected N x 3 x 112 x 112 (an aligned face)"
            )
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.dim = int(self._run(np.zeros((1, 3, 112, 112), np.float32)).shape[1])

    def _run(self, x):
        n = x.shape[0]
        if self.fixed_batch is None:
            return self.session.run([self.output_name], {self.input_name: x})[0].reshape(n, -1)
        b, chunks = self.fixed_batch, []
        for start in range(0, n, b):
            part = x[start:start + b]
            if part.shape[0] < b:  # pad the last chunk up to the graph's fixed batch size
                part = np.concatenate([part, np.zeros((b - part.shape[0],) + part.shape[1:], part.dtype)])
            chunks.append(self.session.run([self.output_name], {self.input_name: part})[0].reshape(b, -1))
        return np.concatenate(chunks)[:n]

    def to(self, device):
        device = torch.device(device)
        if device.type != self.device.type:
            import onnx

            self.device = device
            self._open_session(onnx.load(self.path))
        self.device = device
        return self

    def embed(self, clean):
        """N x 3 x 112 x 112 in [-1, 1] -> N x dim float32 tensor on the input's device (no grad)."""
        x = clean.detach().float().cpu().numpy()
        if self.input_range == "pixel":
            x = (x + 1.0) * 127.5
        out = self._run(np.ascontiguousarray(x, dtype=np.float32))
        return torch.from_numpy(np.asarray(out, np.float32)).to(clean.device)

    __call__ = embed

    def __repr__(self):
        return f"OnnxTeacher({self.name!r}, dim={self.dim}, input={self.input_range})"

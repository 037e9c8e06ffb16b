"""Embedders: anything that turns a batch of faces into identity vectors.

Embedder protocol: `embedder(batch)` with batch float32 torch tensor [N, 3, 112, 112] RGB in
[-1, 1] returns np.float32 [N, D]. `load_embedder(spec)` builds one from
  - "name:checkpoint"  a network of `insightface_g2d.get_model` plus its weights (backbone.pth,
                       model.pt or a stage checkpoint; the embedding size is read from it),
  - "name"             the same network with random weights (smoke tests, benchmarks),
  - "path.onnx"        an ONNX model run with onnxruntime (on the device's GPU when it is a CUDA
                       device and onnxruntime has CUDA, else on CPU),
  - "dlib"             dlib's ResNet face recognizer (the `[dlib]` extra),
  - an nn.Module.
`embed_images` is the loop arcface_torch's verification runs: embedding of the face plus the
embedding of its mirror image, not normalised (the metrics normalise the sum).
"""
import os
import warnings

import numpy as np
import torch
from tqdm import tqdm

from ..data.transforms import to_tensor
from ..errors import CheckpointError, ConfigError


class TorchEmbedder:
    """A backbone in eval mode on `device`; batches move to the device, outputs come back as numpy.

    channels_last: feed batches in channels-last memory layout (None: on CPU only). oneDNN's CPU
    convolutions take that path even with NCHW weights, about 1.2-1.5x faster for IResNet,
    MobileFaceNet and G2D here, with identical results; the model itself is left untouched.
    """

    def __init__(self, model, device="cpu", channels_last=None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.name = type(model).__name__
        self.channels_last = self.device.type == "cpu" if channels_last is None else bool(channels_last)

    @torch.inference_mode()
    def __call__(self, batch):
        fmt = torch.channels_last if self.channels_last and batch.dim() == 4 else torch.preserve_format
        out = self.model(batch.to(self.device, non_blocking=True, memory_format=fmt))
        if isinstance(out, (tuple, list)):  # some networks return (embedding, extras)
            out = out[0]
        return out.float().cpu().numpy()


MXNET_PREFIXES = (("Sub", "_minus"), ("Mul", "_mul"))  # node names of in-graph (x - 127.5) / 128


def normalises_inside(graph):
    """True when a node named Sub*/_minus* and one named Mul*/_mul* are among the graph's first 8
    nodes: insightface's ArcFaceONNX test for a model that normalises its own 0..255 input."""
    names = [(n.name or "") for n in graph.node[:8]]
    return all(any(n.startswith(prefix) for n in names) for prefix in MXNET_PREFIXES)


def onnx_input_range(path):
    """'[0,255]' when the graph normalises its own input, else '[-1,1]'.

    Models converted from mxnet (insightface's model zoo) start with Sub and Mul nodes that do
    (x - 127.5) / 128 themselves and take raw 0..255 pixels; insightface's own ArcFaceONNX uses
    the same test (`normalises_inside`). Everything else, including arcface_torch's torch2onnx
    exports, takes [-1, 1].
    """
    import onnx

    return "[0,255]" if normalises_inside(onnx.load(path, load_external_data=False).graph) else "[-1,1]"


_NEEDS_ONNX = "ONNX models need onnx and onnxruntime: pip install onnx onnxruntime"


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


class OnnxEmbedder:
    """An ONNX face model on onnxruntime: `embedder(batch)` as the Embedder protocol above.

    Input: NCHW float32 RGB (NHWC models are detected from the input shape and fed transposed);
    a fixed batch dimension is honoured by running chunks of that size.
    input_range: "[-1,1]", "[0,255]" or "auto" (see `onnx_input_range`).
    device: a CUDA device runs on CUDAExecutionProvider on that GPU (`onnx_providers`) when
    onnxruntime has it; otherwise (with a warning for a CUDA device) and by default on CPU.
    what: how error messages name the model ("ONNX model", "ONNX teacher").
    Also the session behind teachers.OnnxTeacher.
    """

    def __init__(self, path, input_range="auto", threads=None, device="cpu", what="ONNX model"):
        if input_range not in ("[-1,1]", "[0,255]", "auto"):
            raise ConfigError(f"input_range must be '[-1,1]', '[0,255]' or 'auto', got {input_range!r}")
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise CheckpointError(f"{what} {path!r} does not exist (expected a recognition .onnx file)")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(_NEEDS_ONNX) from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        providers = onnx_providers(device, ort.get_available_providers())
        if torch.device(device).type == "cuda" and providers == ["CPUExecutionProvider"]:
            warnings.warn(f"{what} {os.path.basename(path)!r} runs on the CPU: this onnxruntime has no "
                          "CUDAExecutionProvider (install onnxruntime-gpu to run it on the GPU)", stacklevel=2)
        self.device, self.providers = torch.device(device), providers
        try:
            self.input_range = onnx_input_range(path) if input_range == "auto" else input_range
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except ImportError:
            raise ConfigError(_NEEDS_ONNX) from None
        except Exception as err:  # onnx and onnxruntime raise their own exception types
            raise CheckpointError(f"cannot read {what} {path!r}: {str(err).splitlines()[0]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self.input_shape = list(inp.shape)
        shape = self.input_shape
        self.nhwc = len(shape) == 4 and shape[1] != 3 and shape[3] == 3
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.path, self.name = path, os.path.basename(path)

    def _run(self, x):
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def __call__(self, batch):
        x = batch.detach().float().cpu().numpy()
        if self.input_range == "[0,255]":
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
        return np.asarray(out, dtype=np.float32).reshape(len(x), -1)


def _final_bn_key(model):
    """Name of the running mean of the last BatchNorm1d: its length is the embedding size."""
    key = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            key = f"{name}.running_mean"
    return key


def build_torch_model(name, checkpoint=None, num_features=None):
    """get_model(name) with weights from `checkpoint` (embedding size inferred when not given)."""
    from ..backbones.checkpoint import load_backbone_weights, read_state_dict
    from ..backbones.registry import get_model, list_models

    if name not in list_models():
        raise ConfigError(f"unknown network {name!r} in model spec; known: {', '.join(list_models())}")
    if checkpoint is None:
        return get_model(name, num_features=num_features or 512)
    state = read_state_dict(checkpoint)
    model = get_model(name, num_features=num_features or 512)
    if num_features is None:  # read the embedding size off the checkpoint's last BatchNorm1d
        key = _final_bn_key(model)
        value = state.get(key) if key else None
        if value is not None and value.dim() == 1 and value.shape[0] != 512:
            model = get_model(name, num_features=int(value.shape[0]))
    return load_backbone_weights(model, state, name)


def load_embedder(spec, device="cpu", num_features=None, input_range="auto"):
    """An Embedder from "name:checkpoint", "name", "path.onnx" or an nn.Module (see module doc)."""
    if isinstance(spec, torch.nn.Module):
        return TorchEmbedder(spec, device)
    if callable(spec) and not isinstance(spec, str):
        return spec  # already an embedder
    spec = os.fspath(spec)
    if spec.lower().endswith(".onnx"):
        return OnnxEmbedder(spec, input_range=input_range, device=device)
    if spec == "dlib":
        from ..teachers.dlib_teacher import DlibFaceRecognizer

        return DlibFaceRecognizer(memoize=True, workers=os.cpu_count() or 1)
    from ..backbones.registry import list_models

    name, sep, checkpoint = spec.partition(":")
    if name in list_models():
        embedder = TorchEmbedder(build_torch_model(name, checkpoint if sep else None, num_features), device)
        embedder.name = spec
        return embedder
    if os.path.isfile(spec):
        raise ConfigError(
            f"model spec {spec!r} is a file but not .onnx; for a PyTorch checkpoint write NETWORK:{spec} "
            f"(for example r50:{spec} or g2d:{spec})"
        )
    raise ConfigError(
        f"cannot understand model spec {spec!r}: use NETWORK:CHECKPOINT (networks: {', '.join(list_models())}), "
        "NETWORK alone for random weights, a .onnx file, or dlib"
    )


def embed_images(embedder, images, batch_size=64, flip=True, progress=True, desc="embedding"):
    """uint8 [N, H, W, 3] RGB faces -> float32 [N, D]: embedding (+ embedding of the mirror image).

    Conversion to [-1, 1] tensors happens one batch at a time, so memory stays at the uint8
    images plus one float batch. With flip=True each batch and its mirror run as one forward
    pass of 2 x batch_size (eval-mode BatchNorm makes this identical to two passes).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 [N, H, W, 3] images, got shape {images.shape}")
    n = len(images)
    out = None
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False)
    for start in range(0, n, batch_size):
        batch = to_tensor(images[start:start + batch_size])
        b = len(batch)
        if flip:
            emb = embedder(torch.cat([batch, batch.flip(3)]))
            emb = emb[:b].astype(np.float64) + emb[b:]
        else:
            emb = embedder(batch)
        if out is None:
            out = np.empty((n, emb.shape[1]), dtype=np.float32)
        out[start:start + b] = emb
        bar.update(b)
    bar.close()
    if out is None:
        raise ValueError("no images to embed")
    return out

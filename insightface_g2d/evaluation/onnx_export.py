"""Export a backbone to ONNX that insightface's model zoo loads as a recognition model.

What `insightface.model_zoo.get_model(path)` needs to return an ArcFaceONNX (read from its
model_zoo.py / arcface_onnx.py):
  - one input of shape [batch, 3, S, S] with S >= 112, S % 16 == 0 and fixed integers at
    positions 2 and 3 (only the batch may be symbolic), fewer than 5 outputs (5+ means a detector);
  - input preprocessing: unless a node named Sub*/_minus* AND a node named Mul*/_mul* appear among
    the first 8 graph nodes (mxnet exports that normalise inside the graph), ArcFaceONNX feeds
    (pixel - 127.5) / 127.5 -- exactly this project's [-1, 1] scaling -- so the graph must not
    start with nodes named that way (export_onnx renames them if it ever happens);
  - `get_feat(img)` takes BGR images (OpenCV order) and swaps them to RGB (blobFromImages with
    swapRB=True), so an ONNX model exported from an RGB backbone gives the same embedding for the
    BGR image as the torch model for the RGB one.
Exported with the TorchScript-based exporter (dynamo=False): the torch.export-based one needs the
`onnxscript` package, which this project does not require.
"""
import importlib
import inspect
import os

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_open, write_errors
from ..embedders.onnx_model import MXNET_PREFIXES, normalises_inside

INPUT_NAME = "input.1"
OUTPUT_NAME = "embedding"


def _require_onnx():
    try:
        for name in ("onnx", "onnxruntime"):
            importlib.import_module(name)
    except ImportError:
        raise ConfigError("ONNX export needs the onnx and onnxruntime packages: pip install onnx onnxruntime") from None


class _NoAutocast:
    """Temporarily clear a backbone's `fp16` flag (arcface_torch style) so the graph is float32."""

    def __init__(self, model):
        self.model, self.saved = model, getattr(model, "fp16", None)

    def __enter__(self):
        if self.saved is not None:
            self.model.fp16 = False

    def __exit__(self, *exc):
        if self.saved is not None:
            self.model.fp16 = self.saved


def _rename_mxnet_like_nodes(graph):
    """Prefix node names that would make ArcFaceONNX assume in-graph normalisation. Returns count."""
    if not normalises_inside(graph):
        return 0
    count = 0
    for node in graph.node[:8]:
        if (node.name or "").startswith(MXNET_PREFIXES[0] + MXNET_PREFIXES[1]):
            node.name = "g2d_" + node.name
            count += 1
    return count


def export_onnx(model, path, opset=17, image_size=112):
    """Write `model` (N x 3 x S x S RGB [-1, 1] -> N x D) as ONNX with a dynamic batch axis.

    Input "input.1" [batch, 3, S, S] float32, output "embedding" [batch, D]. The model is exported
    in eval mode on CPU in float32. Returns the path. CheckpointError, and nothing written, when a
    weight or BatchNorm statistic holds NaN or inf.
    """
    from ..backbones.checkpoint import check_finite_weights

    check_finite_weights(model.state_dict(), "the network to export")
    _require_onnx()
    import onnx

    path = os.fspath(path)
    model = model.float().cpu().eval()
    dummy = torch.zeros(1, 3, image_size, image_size)
    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=int(opset),
                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                  do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    import io
    import warnings

    graph = io.BytesIO()  # in memory: only the finished file is written, atomically
    with warnings.catch_warnings(), _NoAutocast(model), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based exporter"
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes fixed but the batch: as intended
        torch.onnx.export(model, (dummy,), graph, **kwargs)
    proto = onnx.load_from_string(graph.getvalue())
    _rename_mxnet_like_nodes(proto.graph)
    onnx.checker.check_model(proto)
    with write_errors(path), atomic_open(path) as f:
        f.write(proto.SerializeToString())
    return path


def load_network(network, checkpoint, num_features=None):
    """get_model(network) with `checkpoint` loaded strictly (embedding size read from it)."""
    from ..embedders.torch_network import build_network

    if checkpoint is None:
        raise CheckpointError(f"no checkpoint given for {network!r}; export needs trained weights")
    return build_network(network, checkpoint, num_features).eval()


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def check_parity(model, path, batch_sizes=(1, 3), seed=0, image_size=112):
    """Run random faces through torch and onnxruntime; dict(max_abs_diff, max_abs_ref, per_batch
    {batch size: max |torch - onnx|}, max_abs_diff_l2 (same on L2-normalised embeddings, what
    matching uses), output_dim)."""
    _require_onnx()
    session = _session(path)
    gen = torch.Generator().manual_seed(int(seed))
    model = model.float().cpu().eval()
    per_batch, ref_max, l2_diff, dim = {}, 0.0, 0.0, None
    for b in batch_sizes:
        x = torch.rand(b, 3, image_size, image_size, generator=gen) * 2 - 1
        with torch.no_grad(), _NoAutocast(model):
            ref = model(x).float().numpy()
        out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        if out.shape != ref.shape:
            raise CheckpointError(f"ONNX output shape {out.shape} differs from torch {ref.shape} at batch {b}")
        per_batch[int(b)] = float(np.abs(out - ref).max())
        ref_max = max(ref_max, float(np.abs(ref).max()))
        unit = [v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in (ref, out)]
        l2_diff = max(l2_diff, float(np.abs(unit[0] - unit[1]).max()))
        dim = int(ref.shape[1])
    return dict(max_abs_diff=max(per_batch.values()), max_abs_ref=ref_max, per_batch=per_batch,
                max_abs_diff_l2=l2_diff, output_dim=dim)


def check_insightface(model, path, seed=0):
    """Load `path` with insightface.model_zoo.get_model and compare its get_feat on a BGR face with
    the torch model on the same face in RGB. dict(model_class, input_mean, input_std, input_shape,
    max_abs_diff). Raises ConfigError when insightface does not see a recognition model."""
    from ..data.transforms import to_tensor

    try:
        from insightface.model_zoo import get_model as zoo_get_model
    except ImportError:
        raise ConfigError("the insightface check needs the insightface package: pip install insightface") from None
    zoo_model = zoo_get_model(os.fspath(path), providers=["CPUExecutionProvider"])
    name = type(zoo_model).__name__
    if name != "ArcFaceONNX" or getattr(zoo_model, "taskname", None) != "recognition":
        raise ConfigError(f"insightface.model_zoo.get_model({os.fspath(path)!r}) returned {name}, "
                          "not a recognition model (ArcFaceONNX)")
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    feat = np.asarray(zoo_model.get_feat(np.ascontiguousarray(rgb[:, :, ::-1])), np.float32).reshape(1, -1)
    model = model.float().cpu().eval()
    with torch.no_grad(), _NoAutocast(model):
        ref = model(to_tensor(rgb)[None]).float().numpy()
    return dict(model_class=name, input_mean=float(zoo_model.input_mean), input_std=float(zoo_model.input_std),
                input_shape=[d if isinstance(d, int) else str(d) for d in zoo_model.input_shape],
                max_abs_diff=float(np.abs(feat - ref).max()))


def export_checkpoint(network, checkpoint, out, num_features=None, opset=17, check=False, tolerance=1e-4):
    """Build `network` from `checkpoint`, export it to `out`; with check=True also run the onnxruntime
    parity check (batches 1 and 3) and the insightface model-zoo check, raising CheckpointError when
    an embedding differs by more than tolerance * max(1, max |embedding|).

    Returns dict(path, network, output_dim, [parity, insightface]).
    """
    model = load_network(network, checkpoint, num_features)
    export_onnx(model, out, opset=opset)
    info = dict(path=os.fspath(out), network=network, opset=int(opset))
    if check:
        parity = check_parity(model, out)
        zoo = check_insightface(model, out)
        info.update(parity=parity, insightface=zoo, output_dim=parity["output_dim"])
        limit = tolerance * max(1.0, parity["max_abs_ref"])
        worst = max(parity["max_abs_diff"], zoo["max_abs_diff"])
        if worst > limit:
            raise CheckpointError(f"ONNX export of {network} differs from torch by {worst:.3g} "
                                  f"(> {limit:.3g}); try another --opset")
    return info

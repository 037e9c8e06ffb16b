"""Embedders: torch modules, registry checkpoints, ONNX models; the flip-sum embedding loop."""
import numpy as np
import pytest
import torch
from torch import nn

from insightface_g2d import get_model
from insightface_g2d.errors import CheckpointError, ConfigError
from insightface_g2d.embedders.factory import build_embedder
from insightface_g2d.embedders.onnx_model import OnnxEmbedder
from insightface_g2d.embedders.torch_network import TorchEmbedder


class TinyNet(nn.Module):
    """A few thousand parameters, BatchNorm + dropout so eval mode matters."""

    def __init__(self, dim=16):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, 4)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8 * 4 * 4, dim)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return self.fc(self.drop(x))


def faces(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)


def reference_embeddings(net, imgs, flip):
    """Per image, float64: net(x) [+ net(mirror x)], x = (img/255 - 0.5)/0.5 in CHW."""
    net.eval()
    out = []
    with torch.no_grad():
        for img in imgs:
            x = torch.from_numpy(((img.astype(np.float64) / 255 - 0.5) / 0.5).transpose(2, 0, 1).copy()).float()[None]
            e = net(x).double()
            if flip:
                e = e + net(torch.flip(x, dims=[3])).double()
            out.append(e[0].numpy())
    return np.stack(out)


def test_torch_embedder_eval_mode_and_flip_sum():
    torch.manual_seed(0)
    net = TinyNet()
    net.train()
    emb = TorchEmbedder(net)
    assert not net.training
    imgs = faces(7)
    a = emb.embed_images(imgs, batch_size=3, flip=True, progress=False)
    b = emb.embed_images(imgs, batch_size=7, flip=True, progress=False)
    assert a.shape == (7, 16) and a.dtype == np.float32
    np.testing.assert_allclose(a, reference_embeddings(net, imgs, True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # batch size does not matter
    c = emb.embed_images(imgs, batch_size=4, flip=False, progress=False)
    np.testing.assert_allclose(c, reference_embeddings(net, imgs, False), rtol=1e-4, atol=1e-5)
    assert not np.allclose(a, 2 * c)  # the mirror really is a different input


def test_build_embedder_registry_checkpoint_infers_embedding_size(tmp_path):
    torch.manual_seed(1)
    net = get_model("g2d_t", num_features=24).eval()
    with torch.no_grad():  # non-trivial BN statistics so a wrong load would show
        net.reformer.features.running_mean.uniform_(-1, 1)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    emb = build_embedder(f"g2d_t:{tmp_path / 'model.pt'}")
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(emb(x), want, rtol=1e-4, atol=1e-5)
    # an arcface_torch resume checkpoint nests the backbone
    torch.save({"state_dict_backbone": net.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    assert build_embedder(f"g2d_t:{tmp_path / 'ckpt.pt'}")(x).shape == (2, 24)


def test_build_embedder_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot understand"):
        build_embedder("resnet9000:foo.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        build_embedder(f"g2d_t:{tmp_path / 'missing.pt'}")
    torch.save(get_model("g2d_t", num_features=8).state_dict(), tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        build_embedder(f"mbf:{tmp_path / 'g.pt'}")
    (tmp_path / "x.pth").write_bytes(b"0")
    with pytest.raises(ConfigError, match="NETWORK:"):
        build_embedder(str(tmp_path / "x.pth"))
    with pytest.raises(CheckpointError):
        build_embedder(str(tmp_path / "missing.onnx"))


class _RawPixelModel(nn.Module):
    """Takes 0..255 pixels and normalises inside, as mxnet-converted insightface models do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x - 127.5) * (1 / 127.5))


def _export(model, path, batch=None):
    dynamic = None if batch else {"data": {0: "n"}}
    torch.onnx.export(model.eval(), torch.zeros(batch or 2, 3, 112, 112), str(path), input_names=["data"],
                      output_names=["fc1"], dynamic_axes=dynamic, dynamo=False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_embedder_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(2)
    net = TinyNet().eval()
    _export(net, tmp_path / "m.onnx")
    emb = build_embedder(str(tmp_path / "m.onnx"))
    assert isinstance(emb, OnnxEmbedder) and emb.input_range == "pm1" and emb.input_name == "data"
    imgs = faces(5, seed=3)
    np.testing.assert_allclose(emb.embed_images(imgs, batch_size=2, progress=False),
                               reference_embeddings(net, imgs, True), rtol=1e-4, atol=1e-4)

    # Graph that normalises its own input, nodes named as insightface's check expects.
    _export(_RawPixelModel(net), tmp_path / "raw.onnx")
    model = onnx.load(str(tmp_path / "raw.onnx"))
    for i, node in enumerate(model.graph.node[:4]):
        node.name = f"{node.op_type}_{i}"
    onnx.save(model, str(tmp_path / "raw.onnx"))
    raw = build_embedder(str(tmp_path / "raw.onnx"))
    assert raw.input_range == "pixel"
    np.testing.assert_allclose(raw.embed_images(imgs, progress=False),
                               reference_embeddings(net, imgs, True), rtol=1e-4, atol=1e-4)

    # Fixed batch size 4: 5 images run as two padded chunks.
    _export(net, tmp_path / "fixed.onnx", batch=4)
    fixed = build_embedder(str(tmp_path / "fixed.onnx"))
    assert fixed.fixed_batch == 4
    np.testing.assert_allclose(fixed.embed_images(imgs, batch_size=5, progress=False),
                               reference_embeddings(net, imgs, True), rtol=1e-4, atol=1e-4)

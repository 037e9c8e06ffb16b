"""ONNX export: parity with torch at batch 1 and 3, loadable by insightface's model zoo, clear errors."""
import numpy as np
import pytest
import torch

import insightface_g2d
from insightface_g2d.cli.common import run_cli
from insightface_g2d.cli.evaluate import main
from insightface_g2d.data.transforms import to_tensor

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

NUM_FEATURES = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_g2d(seed=0):
    """g2d_t with non-trivial BatchNorm statistics (fresh BNs are identities and hide export bugs)."""
    torch.manual_seed(seed)
    model = insightface_g2d.get_model("g2d_t", num_features=NUM_FEATURES).eval()
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.1, 0.1)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, checkpoint path, onnx path, CLI stdout) from one `g2d-eval export-onnx --check` run."""
    d = tmp_path_factory.mktemp("onnx")
    model = _tiny_g2d()
    ckpt = d / "model.pt"
    torch.save(model.state_dict(), ckpt)
    out = d / "g2d_t.onnx"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = run_cli(main, ["export-onnx", "--network", "g2d_t", "--checkpoint", str(ckpt), "--out", str(out),
                            "--check"])
    assert rc == 0
    return model, ckpt, out, buf.getvalue()


def test_export_graph_has_dynamic_batch_and_inferred_embedding_size(exported):
    _, _, path, stdout = exported
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert proto.graph.input[0].name == "input.1"
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 112, 112]
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert out_dims[1].dim_value == NUM_FEATURES  # read from the checkpoint, not the 512 default
    assert "onnxruntime vs torch: max abs diff" in stdout and "ArcFaceONNX" in stdout


def test_onnxruntime_parity_batch_1_and_3(exported):
    model, _, path, _ = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 112, 112, generator=gen) * 2 - 1
    with torch.no_grad():
        ref = model(x).numpy()
    out3 = sess.run(None, {"input.1": x.numpy()})[0]
    out1 = sess.run(None, {"input.1": x[1:2].numpy()})[0]
    assert out3.shape == (3, NUM_FEATURES)
    assert np.abs(out3 - ref).max() <= 1e-4
    assert np.abs(out1 - ref[1:2]).max() <= 1e-4
    assert np.abs(ref).max() > 0.1  # not a degenerate all-zero output


def test_insightface_model_zoo_loads_it_as_recognition_with_bgr_input(exported):
    from insightface.model_zoo import get_model
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    model, _, path, _ = exported
    zoo = get_model(str(path), providers=["CPUExecutionProvider"])
    assert isinstance(zoo, ArcFaceONNX) and zoo.taskname == "recognition"
    assert (zoo.input_mean, zoo.input_std) == (127.5, 127.5)  # = our [-1, 1] scaling
    rng = np.random.default_rng(0)
    rgb = np.zeros((112, 112, 3), np.uint8)
    rgb[..., 0] = rng.integers(0, 256, (112, 112))  # channels differ, so a channel swap shows
    rgb[..., 2] = 255 - rgb[..., 0]
    with torch.no_grad():
        ref = model(to_tensor(rgb)[None]).numpy()
    feat_bgr = zoo.get_feat(np.ascontiguousarray(rgb[:, :, ::-1]))
    feat_rgb = zoo.get_feat(rgb)  # wrong order: must not match
    assert np.abs(feat_bgr - ref).max() <= 1e-4
    assert np.abs(feat_rgb - ref).max() > 1e-2


def test_exported_model_is_an_embedder_for_compare(exported):
    from insightface_g2d.embedders.factory import build_embedder

    model, _, path, _ = exported
    faces = np.random.default_rng(3).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    onnx_emb = build_embedder(str(path)).embed_images(faces, batch_size=3, progress=False)
    torch_emb = build_embedder(model).embed_images(faces, batch_size=3, progress=False)
    assert np.abs(onnx_emb - torch_emb).max() <= 2e-4


def test_mxnet_like_node_names_are_renamed():
    from onnx import TensorProto, helper

    from insightface_g2d.evaluation.onnx_export import _rename_mxnet_like_nodes

    nodes = [helper.make_node("Sub", ["x", "m"], ["a"], name="Sub_0"),
             helper.make_node("Mul", ["a", "s"], ["y"], name="Mul_1")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    assert _rename_mxnet_like_nodes(graph) == 2
    assert [n.name for n in graph.node] == ["g2d_Sub_0", "g2d_Mul_1"]
    graph.node[0].name = "Sub_0"
    graph.node[1].name = "Conv_1"  # Sub alone does not trigger insightface's rule: leave it
    assert _rename_mxnet_like_nodes(graph) == 0


@pytest.mark.parametrize("case", ["missing", "other_network", "unknown_network"])
def test_bad_inputs_exit_2_with_a_clear_message(exported, tmp_path, capsys, case):
    _, ckpt, _, _ = exported
    network, checkpoint, expect = {
        "missing": ("g2d_t", str(tmp_path / "nope.pt"), "does not exist"),
        "other_network": ("mbf", str(ckpt), "does not match network 'mbf'"),
        "unknown_network": ("r999", str(ckpt), "unknown network 'r999'"),
    }[case]
    rc = run_cli(main, ["export-onnx", "--network", network, "--checkpoint", checkpoint,
                        "--out", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert rc == 2
    assert expect in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_dlib_network_exports_with_its_warp_to_the_chip(tmp_path):
    """dlib's ResNet in PyTorch (its crop-to-chip warp inside the graph) exports and runs in
    onnxruntime like the torch module, at any batch size."""
    torch.manual_seed(1)
    model = insightface_g2d.get_model("dlib_resnet", num_features=128).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(0.5)  # keeps 29 random residual layers finite
    ckpt = tmp_path / "dlib.pt"
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "dlib.onnx"
    assert run_cli(main, ["export-onnx", "--network", "dlib_resnet", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == (3, 128) and np.isfinite(expected).all() and np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))

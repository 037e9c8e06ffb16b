"""Networks that see only the upper face (`<network>+upper<R>`, backbones/upper_face.py): rows from R
down never reach the network, on 112 crops and on dlib's 150 chip alike, in PyTorch and in ONNX;
the state dict is the base network's; G2D stages accept them."""
import numpy as np
import pytest
import torch

from insightface_g2d.backbones.registry import get_model, is_model
from insightface_g2d.backbones.upper_face import parse_upper_name
from insightface_g2d.data.transforms import to_tensor
from insightface_g2d.errors import ConfigError


def test_names():
    assert parse_upper_name("g2d_dlib+upper66") == ("g2d_dlib", 66)
    assert parse_upper_name("g2d_dlib") is None and parse_upper_name("r50+upper") is None
    assert is_model("g2d_t+upper60") and is_model("r18+upper70") and not is_model("nonet+upper60")
    for bad in ("g2d_t+upper0", "g2d_t+upper112"):
        with pytest.raises(ConfigError, match="between 1 and 111"):
            parse_upper_name(bad)


def _faces(seed, n=2):
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def _changed_from(faces, row, seed=9):
    out = faces.copy()
    out[:, row:] = np.random.default_rng(seed).integers(0, 256, out[:, row:].shape)
    return out


@pytest.mark.parametrize("network", ["g2d_t", "g2d_dlib"])
def test_rows_from_r_down_never_reach_the_network(network, one_torch_thread):
    torch.manual_seed(0)
    model = get_model(f"{network}+upper60", num_features=32).eval()
    base = get_model(network, num_features=32)
    assert list(model.state_dict()) == list(base.state_dict())  # checkpoints and init weights as the base's
    faces = _faces(1)
    with torch.no_grad():
        ref = model(to_tensor(faces))
        same = model(to_tensor(_changed_from(faces, 60)))
        moved = model(to_tensor(_changed_from(faces, 59)))
        model.encoder._forward_pre_hooks.clear()  # the same weights without the cut see the lower face
        uncut = model(to_tensor(_changed_from(faces, 60)))
    assert torch.equal(ref, same)
    assert (ref - moved).abs().max() > 1e-4 and (ref - uncut).abs().max() > 1e-4


def test_the_chip_path_cuts_the_same_rows(one_torch_thread):
    """Evaluation embeds dlib-based networks from the 150 x 150 chip cv2 makes of the 112 crop: the
    cut there is at the first chip row whose sample reaches crop row R."""
    from insightface_g2d.embedders.torch_network import TorchEmbedder

    torch.manual_seed(0)
    embedder = TorchEmbedder(get_model("g2d_dlib+upper66", num_features=32))
    faces = _faces(2)
    ref = embedder.embed_images(faces, flip=True, progress=False)
    assert np.array_equal(ref, embedder.embed_images(_changed_from(faces, 66), flip=True, progress=False))
    assert np.abs(ref - embedder.embed_images(_changed_from(faces, 64), flip=True, progress=False)).max() > 1e-4


def test_onnx_export_keeps_the_cut(tmp_path, one_torch_thread):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from insightface_g2d.evaluation.onnx_export import export_onnx

    torch.manual_seed(0)
    model = get_model("g2d_t+upper60", num_features=32).eval()
    export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    faces = _faces(3, n=3)
    run = [session.run(None, {"input.1": to_tensor(f).numpy()})[0] for f in (faces, _changed_from(faces, 60))]
    with torch.no_grad():
        ref = model(to_tensor(faces)).numpy()
    assert np.abs(run[0] - ref).max() < 1e-4 and np.array_equal(run[0], run[1])


def test_g2d_stages_accept_the_network():
    from insightface_g2d.training.kinds.g2d import is_g2d

    assert is_g2d("g2d_dlib+upper66") and is_g2d("g2d_t+upper50")
    assert not is_g2d("r50+upper60")


def test_dlib_resnet_upper_face_has_dlibs_weights():
    pytest.importorskip("face_recognition_models")
    from insightface_g2d.embedders.factory import build_embedder

    upper, whole = build_embedder("dlib_resnet+upper66"), build_embedder("dlib_resnet")
    assert upper.model.upper_face_rows == 66
    a, b = upper.model.state_dict(), whole.model.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    faces = _faces(4)
    assert np.array_equal(upper.embed_images(faces, flip=False, progress=False),
                          upper.embed_images(_changed_from(faces, 66), flip=False, progress=False))


def test_inpainting_decoder_and_info_see_the_networks_descriptor():
    from insightface_g2d.backbones.g2d import build_inpainter, descriptor_of

    assert descriptor_of("g2d_t+upper60") == descriptor_of("g2d_t")
    assert descriptor_of("g2d_dlib+upper66") == descriptor_of("g2d_dlib") == (64, 17)
    assert isinstance(build_inpainter("g2d_dlib+upper66"), torch.nn.Module)

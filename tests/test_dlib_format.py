"""Our reader of dlib's serialization format and the DlibResNet it loads: the encoding checked on
hand-made bytes, a whole model written by an independent encoder here and read back, and damaged
copies of the real model file refused in one line (the real file needs the [dlib] extra)."""
import math
import struct

import numpy as np
import pytest
import torch

from insightface_g2d.backbones.dlib_format import DlibStream
from insightface_g2d.backbones.dlib_resnet import DlibResNet, _layer_plan, read_dlib_resnet
from insightface_g2d.errors import CheckpointError


def enc_int(value):
    """dlib's portable integer: control byte (size | 0x80 if negative), magnitude little-endian."""
    mag = abs(int(value))
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def enc_float(value):
    mantissa, exponent = float(value).as_integer_ratio()
    return enc_int(mantissa) + enc_int(-int(math.log2(exponent)))


def enc_str(text):
    return enc_int(len(text)) + text.encode()


def enc_tensor(array):
    a = np.asarray(array, np.float32)
    shape = (a.shape + (1, 1, 1, 1))[:4] if a.ndim < 4 else a.shape
    return enc_int(2) + b"".join(enc_int(d) for d in shape) + a.astype("<f4").tobytes()


def enc_alias(shape):
    return enc_int(1) + b"".join(enc_int(d) for d in (tuple(shape) + (1, 1, 1))[:4])


def test_integers_floats_strings_as_dlib_writes_them():
    s = DlibStream(b"\x02\x2c\x01" + b"\x81\x05" + b"\x01\x00"[:1] + b"\x07" + b"\x01\x01\x81\x01"
                   + b"\x01\x03abc" + b"1")
    assert s.integer() == 300 and s.integer() == -5 and s.integer() == 7
    assert s.floating() == 0.5  # mantissa 1, exponent -1
    assert s.string() == "abc" and s.boolean() is True and s.at_end()
    assert DlibStream(enc_int(1) + enc_int(32000)).floating() == math.inf
    with pytest.raises(CheckpointError, match="file ends early"):
        DlibStream(b"\x04\x01").integer()
    with pytest.raises(CheckpointError, match="bad integer control byte"):
        DlibStream(b"\x70").integer()


def write_model(state):
    """A DlibResNet state dict in dlib's file layout (loss, wrapper versions, input, layers), with an
    encoder written here independently of the reader."""
    plan = _layer_plan()
    out = [enc_int(1), enc_str("loss_metric_")]
    out += [enc_int(1) if kind in ("tag", "skip") else enc_int(2) for (kind, *_) in reversed(plan[1:])]
    out += [enc_int(2), enc_str("input_rgb_image_sized")]  # the innermost layer's version, then the input
    out += [enc_float(v) for v in state["chip.pixel_mean"].tolist()] + [enc_int(150), enc_int(150)]
    empty = enc_tensor(np.zeros((0, 0, 0, 0)))
    for depth, (kind, *name) in enumerate(plan):
        if kind in ("tag", "skip"):
            continue
        if kind == "con":
            w, b = state[f"{name[0]}.weight"].numpy(), state[f"{name[0]}.bias"].numpy()
            stride = 2 if w.shape[-1] == 7 or name[0].endswith("0.conv1") and name[0] != "layer1.0.conv1" else 1
            out += [enc_str("con_4"), enc_tensor(np.concatenate([w.ravel(), b]).reshape(1, -1, 1, 1)),
                    enc_int(w.shape[0]), enc_int(w.shape[2]), enc_int(w.shape[3]), enc_int(stride), enc_int(stride),
                    enc_int(0 if stride == 2 else 1), enc_int(0 if stride == 2 else 1),
                    enc_alias(w.shape), enc_alias((1, w.shape[0], 1, 1))] + [enc_float(1.0)] * 4
        elif kind == "affine":
            g, b = state[f"{name[0]}.weight"].numpy(), state[f"{name[0]}.bias"].numpy()
            out += [enc_str("affine_"), enc_tensor(np.concatenate([g, b]).reshape(1, -1, 1, 1)),
                    enc_alias((1, len(g), 1, 1)), enc_alias((1, len(b), 1, 1)), enc_int(1)]
        elif kind == "relu":
            out += [enc_str("relu_")]
        elif kind in ("max_pool", "avg_pool", "avg_all"):
            out += [enc_str("max_pool_2" if kind == "max_pool" else "avg_pool_2")] + [enc_int(2)] * 6
        elif kind == "add_prev":
            out += [enc_str("add_prev_")]
        elif kind == "fc":
            w = state["fc.weight"].numpy()  # out x in; dlib stores in x out
            out += [enc_str("fc_2"), enc_int(w.shape[0]), enc_int(w.shape[1]), enc_tensor(w.T.reshape(1, -1, 1, 1)),
                    enc_alias(w.T.shape), enc_alias((0, 0, 0, 0)), enc_int(1)] + [enc_float(1.0)] * 4
        out += [b"000", empty, empty, empty]  # three flags, cached tensors (x_grad, output, grads)
    return b"".join(out)


def test_a_model_written_in_dlibs_layout_reads_back_tensor_for_tensor(tmp_path):
    torch.manual_seed(0)
    model = DlibResNet()
    for p in model.parameters():
        p.data.normal_()
    state = {k: v for k, v in model.state_dict().items()}
    path = tmp_path / "net.dat"
    path.write_bytes(write_model(state))
    read = read_dlib_resnet(path, fold=False)
    assert set(read) == set(state)
    for key, value in state.items():
        assert torch.equal(read[key], value), key
    copy = DlibResNet()
    copy.load_state_dict(read)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        reference = model.eval()(x)
        assert torch.equal(copy.eval()(x), reference)
        # folded (the default): every affine layer the identity, the same function to rounding
        folded = read_dlib_resnet(path)
        assert all(torch.equal(v, torch.ones_like(v)) for k, v in folded.items() if "affine" in k and k.endswith("weight"))
        copy.load_state_dict(folded)
        assert torch.allclose(copy(x), reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


def test_damaged_model_files_are_refused_in_one_line(tmp_path):
    data = write_model(DlibResNet().state_dict())
    cases = {"short.dat": data[:len(data) // 2], "long.dat": data + b"\x00", "empty.dat": b"",
             "other.dat": data.replace(b"\x05relu_", b"\x05relx_", 1)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            read_dlib_resnet(tmp_path / name)
        assert "\n" not in str(err.value) and name in str(err.value)
    with pytest.raises(CheckpointError, match="cannot read"):
        read_dlib_resnet(tmp_path / "missing.dat")


def test_the_installed_model_file_loads_without_dlib(monkeypatch):
    import sys

    pytest.importorskip("face_recognition_models", reason="the [dlib] extra is not installed")
    monkeypatch.setitem(sys.modules, "dlib", None)
    state = read_dlib_resnet()
    assert state["fc.weight"].shape == (128, 256) and state["conv1.weight"].shape == (32, 3, 7, 7)
    assert sum(v.numel() for k, v in state.items() if k != "chip.pixel_mean") == sum(
        p.numel() for p in DlibResNet().parameters())
    assert np.allclose(state["chip.pixel_mean"].numpy(), [122.782, 117.001, 104.298], atol=1e-3)


def test_sizes_through_the_network():
    """dlib's unpadded stride-2 convolutions and its add of unequal sizes: 150 -> 72 -> 35 -> 17 -> 8
    -> 4 (3 padded) -> 2 (1 padded); crops and chips both accepted, anything else refused."""
    model = DlibResNet().eval()
    sizes = []
    for name in ("layer1", "layer2", "layer3", "layer4", "layer5"):
        getattr(model, name).register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 150, 150)).shape == (2, 128)
        assert model(torch.zeros(1, 3, 112, 112)).shape == (1, 128)
    assert sizes[:5] == [(32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2)]
    with pytest.raises(ValueError, match="112 x 112 aligned crops or"):
        model(torch.zeros(1, 3, 100, 100))


def test_crop_is_mapped_to_the_chip_as_cv2_does():
    """The chip the network makes from a 112 crop equals cv2.warpAffine's (bilinear, edges
    replicated) to within the rounding of cv2's fixed-point interpolation (coordinates in 1/32 px, so
    the test image is smooth: on pixel noise that rounding alone moves values by several levels)."""
    import cv2

    from insightface_g2d.backbones.dlib_resnet import CHIP_SIZE, CROP_TO_CHIP

    noise = np.random.default_rng(3).integers(0, 256, (112, 112, 3)).astype(np.float32)
    crop = cv2.GaussianBlur(noise, (0, 0), 3) * 4 - 384
    ref = cv2.warpAffine(crop, CROP_TO_CHIP, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    model = DlibResNet()
    x = torch.from_numpy(crop).permute(2, 0, 1)[None] / 127.5 - 1
    chip = model.chip(x)[0].permute(1, 2, 0).numpy() * 256.0 + model.chip.pixel_mean.numpy()
    assert crop.std() > 20 and np.abs(chip - ref).max() < 0.5 and np.abs(chip - ref).mean() < 0.1


def test_struct_floats_are_little_endian_in_tensors():
    data = enc_int(2) + b"".join(enc_int(d) for d in (1, 2, 1, 1)) + struct.pack("<2f", 1.5, -2.0)
    assert DlibStream(data).tensor().ravel().tolist() == [1.5, -2.0]

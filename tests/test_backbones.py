import os
import subprocess
import sys

import pytest
import torch

from insightface_g2d import get_model, list_models
from insightface_g2d.backbones import build_discriminator, build_inpainter, load_backbone_weights
from insightface_g2d.backbones.checkpoint import read_state_dict
from insightface_g2d.backbones.flops import count_macs
from insightface_g2d.errors import CheckpointError

SMALL = ["g2d_t", "g2d_s", "g2d", "r18", "mbf"]


def randomise_bn(model, seed=0):
    """Give every BN non-trivial statistics so equality checks exercise them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.mark.parametrize("name", list_models())
def test_every_network_builds_and_gives_embedding_shape(name):
    # Train mode: with untrained BN statistics, arcface_torch's init overflows in eval mode for the
    # deepest IResNets (upstream behaves the same); batch statistics keep activations in range.
    model = get_model(name, num_features=64).train()
    batch = 2
    with torch.no_grad():
        out = model(torch.rand(batch, 3, 112, 112) * 2 - 1)
    assert out.shape == (batch, 64)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_arcface_torch_calling_convention_and_unknown_name():
    model = get_model("g2d_t", dropout=0.0, fp16=False, num_features=128)
    assert model.reformer.fc.out_features == 128
    with pytest.raises(ValueError) as err:
        get_model("r51")
    for known in ("g2d", "r50", "mbf"):
        assert known in str(err.value)


def test_g2d_parts_shapes_and_composition():
    torch.manual_seed(0)
    model = randomise_bn(get_model("g2d")).eval()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        desc = model.encode(x)
        assert desc.shape == (2, 128, 28, 28)
        assert torch.equal(model.reform(desc), model(x))
        restored = build_inpainter("g2d")(desc)
    assert restored.shape == (2, 3, 112, 112)
    assert restored.abs().max() <= 1.0
    logits = build_discriminator()(restored)
    assert logits.shape == (2, 1, 14, 14)


def test_fp16_flag_is_harmless_on_cpu():
    torch.manual_seed(0)
    a = randomise_bn(get_model("g2d_t", fp16=False)).eval()
    b = get_model("g2d_t", fp16=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("name", SMALL)
def test_state_dict_round_trip_is_bit_exact(name, tmp_path):
    torch.manual_seed(1)
    src = randomise_bn(get_model(name)).eval()
    path = tmp_path / "backbone.pth"
    torch.save(src.state_dict(), path)
    dst = get_model(name).eval()
    dst.load_state_dict(torch.load(path, weights_only=True), strict=True)
    for (k1, v1), (k2, v2) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_iresnet_state_dict_layout_matches_arcface_torch():
    keys = list(get_model("r18").state_dict())
    assert keys[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    for key in ("prelu.weight", "layer1.0.bn1.weight", "layer1.0.conv1.weight", "layer1.0.prelu.weight",
                "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_var", "layer4.1.bn3.bias",
                "bn2.weight", "fc.weight", "fc.bias", "features.running_mean"):
        assert key in keys
    assert get_model("r18").fc.in_features == 512 * 7 * 7
    per_layer = {n: max(int(k.split(".")[1]) for k in get_model(n).state_dict() if k.startswith("layer3.")) + 1
                 for n in ("r18", "r34", "r50")}
    assert per_layer == {"r18": 2, "r34": 6, "r50": 14}


def test_loader_accepts_arcface_resume_checkpoint_and_ddp_prefix(tmp_path):
    src = randomise_bn(get_model("mbf", num_features=32))
    wrapped = {"epoch": 3, "global_step": 10,
               "state_dict_backbone": {"module." + k: v for k, v in src.state_dict().items()}}
    path = tmp_path / "checkpoint_gpu_0.pt"
    torch.save(wrapped, path)
    dst = load_backbone_weights(get_model("mbf", num_features=32), path, "mbf")
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)


def test_wrong_checkpoint_errors_name_network_and_keys(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(get_model("r18").state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_backbone_weights(get_model("r34"), path, "r34")
    msg = str(err.value)
    assert "'r34'" in msg and "missing keys" in msg and "layer1.2." in msg

    torch.save(get_model("g2d_t", num_features=64).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_backbone_weights(get_model("g2d_t", num_features=128), path, "g2d_t")
    assert "wrong shapes" in str(err.value) and "reformer.fc.weight" in str(err.value)

    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(tmp_path / "junk.pth")


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "x": Evil()}, path)
    with pytest.raises(CheckpointError):
        read_state_dict(path)
    assert not marker.exists()


def test_macs_counter_matches_hand_count():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.Conv2d(8, 8, 3, 1, 1, groups=4),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 56 * 56, 10))
    expected = 56 * 56 * 8 * 27 + 56 * 56 * 8 * (2 * 9) + 8 * 56 * 56 * 10
    assert count_macs(net) == expected


def test_default_g2d_costs_less_than_r50():
    assert count_macs(get_model("g2d")) < count_macs(get_model("r50"))


def test_g2d_info_command_runs():
    out = subprocess.run([sys.executable, "-m", "insightface_g2d.cli.info", "--network", "g2d_t",
                          "--teacher", "mbf", "--batch-size", "2"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "descriptor       (2, 32, 28, 28)" in out.stdout
    assert "| g2d_t |" in out.stdout


def test_empty_checkpoint_file_is_a_clear_error(tmp_path):
    (tmp_path / "backbone.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_state_dict(tmp_path / "backbone.pth")

"""Warm starts: a network, or G2D cut from one, starts from a pretrained checkpoint (config.init).

Random-weight r50 / r100 / r18 checkpoints stand in for arcface_torch's released ones: every tensor
is mapped, the cut network computes the whole network's embedding exactly, and a checkpoint of the
wrong architecture is refused in one line."""
import pytest
import torch

from insightface_g2d import get_model
from insightface_g2d.backbones.checkpoint import pretrained_state_dict
from insightface_g2d.backbones.split import parse_split_name, split_state_dict
from insightface_g2d.errors import CheckpointError, ConfigError


def random_network(name, seed=0, num_features=512):
    """get_model(name) with random weights and batch-norm statistics (so a mix-up shows); residual
    branches scaled down, as training leaves them, so 100 blocks stay finite."""
    torch.manual_seed(seed)
    net = get_model(name, num_features=num_features)
    with torch.no_grad():
        for mname, m in net.named_modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5).mul_(0.05 if mname.endswith("bn3") else 1.0)
                m.bias.normal_(0, 0.1)
    return net.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.mark.parametrize("base", ["r50", "r100"])
def test_arcface_checkpoint_splits_into_g2d_tensor_for_tensor(base, tmp_path):
    whole = random_network(base)
    path = tmp_path / "backbone.pth"
    torch.save(whole.state_dict(), path)
    split = get_model(f"g2d_{base}").eval()
    state = pretrained_state_dict(split, str(path))
    assert len(state) == len(whole.state_dict()) == len(split.state_dict())  # every tensor mapped
    split.load_state_dict(state, strict=True)
    assert all(k.startswith("encoder.") for k in state if k.split(".")[1] in ("conv1", "layer1", "layer2"))
    assert all(k.startswith("reformer.") for k in state if k.split(".")[1] in ("layer3", "layer4", "fc", "features"))
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        desc = split.encode(x)
        assert desc.shape == (2, 128, 28, 28)  # G2D's own descriptor
        out = whole(x)
        assert torch.isfinite(out).all() and torch.equal(split(x), out)


def test_wrong_architecture_is_refused_in_one_line(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(random_network("r34").state_dict(), path)
    for target in ("g2d_r50", "r50"):
        with pytest.raises(CheckpointError) as err:
            pretrained_state_dict(get_model(target), str(path))
        text = str(err.value)
        assert "\n" not in text and "layer3" in text  # r34 has 6 blocks in layer3, r50 14: named
    small = tmp_path / "r50_128.pth"
    torch.save(random_network("r50", num_features=128).state_dict(), small)
    with pytest.raises(CheckpointError, match=r"wrong shape.*fc\.weight"):
        pretrained_state_dict(get_model("g2d_r50"), str(small))


def test_split_and_whole_map_back_and_forth():
    whole = random_network("r18", seed=1)
    split = get_model("g2d_r18@layer3")
    state = split_state_dict(split, whole.state_dict())
    split.load_state_dict(state)
    again = pretrained_state_dict(get_model("r18"), split.state_dict())  # a split checkpoint, joined back
    assert again.keys() == whole.state_dict().keys()
    assert all(torch.equal(again[k], v) for k, v in whole.state_dict().items())


def test_split_names():
    assert parse_split_name("g2d_r100") == ("r100", "layer2")
    assert parse_split_name("g2d_dlib") == ("dlib_resnet", "layer2")
    assert parse_split_name("g2d_dlib@layer3") == ("dlib_resnet", "layer3")
    assert parse_split_name("g2d_t") is None and parse_split_name("r50") is None
    with pytest.raises(ConfigError, match="did you mean 'layer3'"):
        parse_split_name("g2d_r50@layr3")


def test_config_init_starts_the_run_network(tmp_path):
    """g2d-train with config.init: the G2D network cut from r18 starts from an r18 checkpoint; a
    stage that keeps the backbone frozen (classify) leaves it untouched, so model.pt is the
    checkpoint, split, tensor for tensor; resume semantics stay (the finished stage is reused)."""
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training
    from training_tools import write_job

    whole = random_network("r18", seed=2, num_features=32)
    ckpt = tmp_path / "backbone.pth"
    torch.save(whole.state_dict(), ckpt)
    job = write_job(tmp_path, stages='[dict(name="classify", steps=2, optimizer="adamw", lr=1e-3)]',
                    extra=f'config.network = "g2d_r18"\nconfig.init = {str(ckpt)!r}\nconfig.teacher = None\n')
    out = tmp_path / "run"
    summary = run_training(load_config(job), output=str(out), device="cpu")
    assert summary["status"] == "finished"
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    expected = split_state_dict(get_model("g2d_r18", num_features=32), whole.state_dict())
    assert model.keys() == expected.keys() and all(torch.equal(model[k], v) for k, v in expected.items())
    net = get_model("g2d_r18", num_features=32).eval()
    net.load_state_dict(model)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), whole(x))


def test_config_init_errors(tmp_path):
    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.runner import run_training
    from training_tools import write_job

    bad = write_job(tmp_path, extra='config.init = dict(path="x.pth")\n', name="bad.py")
    with pytest.raises(ConfigError, match=r"dict\(checkpoint=PATH\)"):
        load_config(bad)
    missing = write_job(tmp_path, stages='[dict(name="classify", steps=1)]',
                        extra='config.init = "nowhere/backbone.pth"\nconfig.teacher = None\n', name="missing.py")
    with pytest.raises(ConfigError, match="does not exist"):
        run_training(load_config(missing), output=str(tmp_path / "m"), device="cpu")
    torch.save(random_network("r18", num_features=32).state_dict(), tmp_path / "r18.pth")
    other = write_job(tmp_path, stages='[dict(name="classify", steps=1)]',
                      extra=f'config.init = {str(tmp_path / "r18.pth")!r}\nconfig.teacher = None\n', name="other.py")
    with pytest.raises(CheckpointError, match="config.init") as err:
        run_training(load_config(other), output=str(tmp_path / "o"), device="cpu")  # g2d_t from an r18
    assert "\n" not in str(err.value)
    assert not (tmp_path / "o" / "stage_classify.pt").exists()


def test_dlib_network_cut_into_g2d(tmp_path):
    """G2D cut from dlib's ResNet starts from dlib's model file and computes its embedding."""
    pytest.importorskip("face_recognition_models", reason="the [dlib] extra is not installed")
    from insightface_g2d.backbones.dlib_resnet import default_model_file, load_dlib_resnet

    whole = load_dlib_resnet().eval()
    for name, shape in (("g2d_dlib", (64, 17, 17)), ("g2d_dlib@layer3", (128, 8, 8))):
        split = get_model(name, num_features=128).eval()
        split.load_state_dict(pretrained_state_dict(split, default_model_file()))
        x = torch.rand(2, 3, 112, 112) * 2 - 1
        with torch.no_grad():
            assert split.encode(x).shape[1:] == shape
            assert torch.equal(split(x), whole(x))


SHIPPED_R100 = ["ms1mv3_r100.py", "glint360k_r100.py"]


def shipped_run_network(config_file, tmp_path, teacher_checkpoint):
    """The network a shipped arcface_torch config trains, built as g2d-train builds it (stages,
    modules, config.init), on tiny synthetic data; returns (module, network name)."""
    from pathlib import Path

    from insightface_g2d.training.config import load_config
    from insightface_g2d.training.kinds import final_network
    from insightface_g2d.training.runner import build_models
    from insightface_g2d.training.stages import build_stage
    from insightface_g2d.training.warm_start import apply_warm_start

    path = Path(__file__).resolve().parents[1] / "recipes" / "configs" / config_file
    cfg = load_config(path, overrides=[f"teacher.checkpoint={teacher_checkpoint}", "rec=synthetic:ids=4,per_id=2",
                                       "num_classes=None", "num_image=None"])
    stages = [build_stage(s, cfg) for s in cfg.stages]
    models = build_models(stages, 4, cfg.seed)
    network = final_network(stages)
    assert apply_warm_start(models, network, cfg) == str(teacher_checkpoint)
    return models.get(network.module).eval(), network.network


@pytest.mark.parametrize("config_file", SHIPPED_R100)
def test_shipped_r100_configs_start_from_the_teachers_weights(config_file, tmp_path):
    """One key (init = "teacher"): G2D's encoder and reformer are the teacher's r100, cut after
    layer2, and compute its embedding exactly before any training."""
    teacher = random_network("r100", seed=3)
    ckpt = tmp_path / "backbone.pth"
    torch.save(teacher.state_dict(), ckpt)
    net, name = shipped_run_network(config_file, tmp_path, ckpt)
    assert name == "g2d_r100" and len(net.state_dict()) == len(teacher.state_dict())
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert net.encode(x).shape == (2, 128, 28, 28)
        assert torch.equal(net(x), teacher(x))


def test_shipped_r100_config_refuses_a_teacher_of_another_architecture(tmp_path):
    ckpt = tmp_path / "r50.pth"
    torch.save(random_network("r50").state_dict(), ckpt)
    with pytest.raises(CheckpointError) as err:
        shipped_run_network(SHIPPED_R100[0], tmp_path, ckpt)
    text = str(err.value)
    assert "\n" not in text and "config.init" in text and "encoder.layer2" in text  # r50: 4 blocks there, r100 13


def test_init_teacher_needs_a_teacher_with_weights():
    from insightface_g2d.training.warm_start import init_checkpoint

    with pytest.raises(ConfigError, match="teacher.checkpoint=PATH"):
        init_checkpoint({"init": "teacher", "teacher": {"cache": "cache/"}})
    assert init_checkpoint({"init": "teacher", "teacher": {"dlib": True}}).endswith(".dat")

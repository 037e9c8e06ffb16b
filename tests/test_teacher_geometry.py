"""Teacher geometry: how teacher embeddings become distillation targets (teachers/geometry.py)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from insightface_g2d.errors import ConfigError
from insightface_g2d.teachers.geometry import (GeometricCache, GeometricTeacher, TargetGeometry, apply_geometry,
                                               sample_indices, teacher_statistics_sample)


def _identities(n_ids=20, per_id=6, dim=16, offset=0.0, seed=0):
    """Embeddings of n_ids people around random unit centres, plus a common offset vector."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    common = np.zeros(dim)
    common[0] = offset
    x = np.repeat(centres, per_id, 0) + 0.3 * rng.normal(size=(n_ids * per_id, dim)) / np.sqrt(dim) + common
    return x.astype(np.float32), np.repeat(np.arange(n_ids), per_id)


def _mean_impostor_cos(x, labels):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    different = labels[:, None] != labels[None, :]
    return cos[different].mean()


def test_center_subtracts_the_mean():
    x, _ = _identities(offset=3.0)
    geometry = TargetGeometry.fit("center", x)
    out = geometry(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, x - x.astype(np.float64).mean(0), atol=1e-5)
    assert np.abs(out.mean(0)).max() < 1e-5


def test_center_restores_the_spread_of_an_offset_teacher():
    # a dlib-like teacher: a common mean vector under every embedding makes all faces look alike
    x, labels = _identities(offset=3.0)
    assert _mean_impostor_cos(x, labels) > 0.8
    centred = TargetGeometry.fit("center", x)(torch.from_numpy(x)).numpy()
    assert abs(_mean_impostor_cos(centred, labels)) < 0.1


def test_center_barely_moves_a_centred_teacher():
    # an ArcFace-like teacher, already centred on the sphere: targets keep their directions
    x, _ = _identities(n_ids=200, per_id=4, offset=0.0)
    out = TargetGeometry.fit("center", x)(torch.from_numpy(x))
    cos = F.cosine_similarity(out, torch.from_numpy(x), dim=1)
    assert cos.min() > 0.97


def test_whiten_gives_identity_covariance():
    x, _ = _identities(n_ids=100, per_id=10, offset=2.0)
    out = TargetGeometry.fit("whiten", x, eps=1e-6)(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.eye(x.shape[1]), atol=1e-3)


def test_batch_center_and_none():
    x = torch.randn(8, 5) + 4.0
    assert torch.allclose(TargetGeometry("batch-center")(x).mean(0), torch.zeros(5), atol=1e-5)
    assert TargetGeometry("none")(x) is x


def test_unknown_geometry_suggests():
    with pytest.raises(ConfigError, match="did you mean 'center'"):
        TargetGeometry("centre")


def test_config_checks_geometry():
    from insightface_g2d.training.config import check_teacher

    check_teacher(dict(cache="x", geometry="whiten"))
    with pytest.raises(ConfigError, match="geometry"):
        check_teacher(dict(cache="x", geometry="sphere"))


def test_sample_indices_are_spread_and_unique():
    idx = sample_indices(10_000, 100)
    assert len(idx) == 100 and idx[0] == 0 and idx[-1] == 9_999 and len(set(idx)) == 100
    assert list(sample_indices(5, 100)) == [0, 1, 2, 3, 4]


class _Dataset:
    def __init__(self, n=40):
        rng = np.random.default_rng(1)
        self.images = rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], 0


class _LiveTeacher:
    """Embeds a face as its mean colour per channel plus a large common offset."""

    device = torch.device("cpu")
    dim = 3

    def embed(self, faces):
        return faces.mean(dim=(2, 3)) + 5.0


def test_live_teacher_statistics_come_from_the_dataset_sample():
    from insightface_g2d.data.transforms import to_tensor

    ds = _Dataset()
    teacher = apply_geometry(_LiveTeacher(), "center", ds)
    assert isinstance(teacher, GeometricTeacher) and not hasattr(teacher, "lookup")
    expected = (to_tensor(ds.images).mean(dim=(2, 3)) + 5.0).double().mean(0)
    torch.testing.assert_close(teacher.geometry.mean.double(), expected, atol=1e-5, rtol=0)
    faces = to_tensor(ds.images[:4])
    torch.testing.assert_close(teacher.embed(faces), _LiveTeacher().embed(faces) - teacher.geometry.mean)
    assert teacher.dim == 3  # everything else is the wrapped teacher's


def test_cache_teacher_statistics_and_lookup(tmp_path):
    from insightface_g2d.data.synthetic import SyntheticFaces
    from insightface_g2d.teachers import TeacherCache, import_embeddings

    ds = SyntheticFaces(num_identities=4, images_per_identity=3, seed=5)
    emb = np.random.default_rng(2).normal(size=(len(ds), 8)).astype(np.float32) + 2.0
    import_embeddings(emb, ds, tmp_path / "cache", "test", dtype="float32")
    cache = TeacherCache(tmp_path / "cache", ds)
    np.testing.assert_array_equal(teacher_statistics_sample(cache, None), emb)  # clean rows of the sample
    teacher = apply_geometry(cache, "center", ds)
    assert isinstance(teacher, GeometricCache)
    idx = torch.arange(len(ds))
    out = teacher.lookup(idx, torch.zeros(len(ds), dtype=torch.bool))
    torch.testing.assert_close(out, torch.from_numpy(emb - emb.astype(np.float64).mean(0)).float(), atol=1e-5, rtol=0)


def test_run_teachers_are_centred_by_default(tmp_path):
    """The training run's TeacherProvider applies the default geometry to a config's teacher."""
    from insightface_g2d.data.synthetic import SyntheticFaces
    from insightface_g2d.teachers import import_embeddings
    from insightface_g2d.training.teacher import TeacherProvider

    ds = SyntheticFaces(num_identities=4, images_per_identity=3, seed=5)
    emb = np.random.default_rng(3).normal(size=(len(ds), 8)).astype(np.float32) + 3.0
    import_embeddings(emb, ds, tmp_path / "cache", "test", dtype="float32")
    provider = TeacherProvider(models=None, stages=[], dataset=ds, device=torch.device("cpu"))
    default = provider.get({"cache": str(tmp_path / "cache")}, "reform")
    raw = provider.get({"cache": str(tmp_path / "cache"), "geometry": "none"}, "reform")
    idx, flipped = torch.arange(len(ds)), torch.zeros(len(ds), dtype=torch.bool)
    assert default.lookup(idx, flipped).mean(0).abs().max() < 1e-5
    torch.testing.assert_close(raw.lookup(idx, flipped), torch.from_numpy(emb))


def test_lr_mult_gives_a_module_its_own_rate():
    """lr_mult={module: f}: that module's parameters form their own param group at lr * f, and the
    schedule scales both groups alike."""
    from insightface_g2d.training.models import ModelSet
    from insightface_g2d.training.optim import WarmupPolyLR, build_optimizer, lr_groups

    models = ModelSet()
    models.add("a", torch.nn.Linear(3, 3))
    models.add("b", torch.nn.Linear(3, 2))
    groups = lr_groups(models, ["a", "b"], 0.1, {"b": 0.25})
    opt = build_optimizer(groups, optimizer="sgd", lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.025]
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]
    sched = WarmupPolyLR(opt, 0, 4)
    sched.step()
    assert [round(g["lr"], 6) for g in opt.param_groups] == [0.075, 0.01875]
    assert lr_groups(models, ["a"], 0.1, {"b": 0.5}) == models.parameters(["a"])


def test_lr_mult_is_checked():
    from insightface_g2d.training.stages import resolve_stage
    from insightface_g2d.training.config import load_config

    cfg = load_config("recipes/configs/lfw_g2d.py")
    spec = resolve_stage(dict(name="reform", steps=10, train=["reformer", "encoder"], lr_mult=dict(encoder=0.1)), cfg, 0)
    assert spec["lr_mult"] == {"encoder": 0.1}
    with pytest.raises(ConfigError, match="does not train"):
        resolve_stage(dict(name="reform", steps=10, lr_mult=dict(encoder=0.1)), cfg, 0)
    with pytest.raises(ConfigError, match="lr_mult"):
        resolve_stage(dict(name="reform", steps=10, train=["reformer", "encoder"], lr_mult=dict(encoder=-1)), cfg, 0)


def test_a_teacher_and_its_differentiable_copy_share_one_fit(monkeypatch):
    """The live teacher's statistics pass runs once per teacher, not again for its differentiable copy."""
    from insightface_g2d.teachers import geometry
    from insightface_g2d.training.teacher import TeacherProvider

    calls = []
    real = geometry.teacher_statistics_sample
    monkeypatch.setattr(geometry, "teacher_statistics_sample", lambda t, d: calls.append(1) or real(t, d))
    provider = TeacherProvider(models=None, stages=[], dataset=_Dataset(), device=torch.device("cpu"))
    monkeypatch.setattr(provider, "_build_raw", lambda spec, *a: _LiveTeacher())
    plain = provider.get({"stage": "baseline"}, "inpaint", False)
    grad = provider.get({"stage": "baseline"}, "inpaint", True)
    assert len(calls) == 1 and plain is not grad and plain.geometry is grad.geometry


def test_a_network_teacher_is_built_once_and_its_differentiable_variant_is_a_copy(monkeypatch):
    """The inpainting identity loss wants the teacher with and without gradients: the network is
    built (its checkpoint read) once, and the differentiable one is a deep copy, not the same module."""
    from insightface_g2d.embedders.torch_network import TorchEmbedder
    from insightface_g2d.training.teacher import TeacherProvider

    builds = []

    def build_raw(spec, stage_name, differentiable, finished):
        builds.append(differentiable)
        torch.manual_seed(len(builds))  # a second build would get other weights
        return TorchEmbedder(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)),
                             differentiable=differentiable)

    provider = TeacherProvider(models=None, stages=[], dataset=_Dataset(), device=torch.device("cpu"))
    monkeypatch.setattr(provider, "_build_raw", build_raw)
    plain = provider.get({"stage": "baseline", "geometry": "none"}, "inpaint", False)
    grad = provider.get({"stage": "baseline", "geometry": "none"}, "inpaint", True)
    assert builds == [False] and provider.get({"stage": "baseline", "geometry": "none"}, "inpaint", True) is grad
    assert grad.model is not plain.model and (plain.differentiable, grad.differentiable) == (False, True)
    faces = torch.rand(2, 3, 4, 4, requires_grad=True)
    torch.testing.assert_close(grad.embed(faces), plain.embed(faces))
    assert not plain.embed(faces).requires_grad
    grad.embed(faces).sum().backward()
    assert faces.grad is not None and faces.grad.abs().sum() > 0
    assert all(p.grad is None for p in grad.model.parameters())  # the teacher's weights stay frozen

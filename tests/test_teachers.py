"""Teachers (torch, ONNX embedders), the embedding cache and the g2d-cache command."""
import hashlib
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from insightface_g2d import get_model
from insightface_g2d.data.transforms import to_tensor
from insightface_g2d.errors import CheckpointError, ConfigError, DataError
from insightface_g2d.embedders.factory import build_teacher
from insightface_g2d.embedders.onnx_model import OnnxEmbedder
from insightface_g2d.embedders.torch_network import TorchEmbedder
from insightface_g2d.teachers import TeacherCache, build_teacher_cache, import_embeddings, teacher_targets


class TinyFaces(torch.utils.data.Dataset):
    """Follows the Dataset protocol: uint8 112 x 112 x 3 RGB faces, int labels, fingerprint()."""

    def __init__(self, n=10, seed=0):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)
        self.labels = [i % 3 for i in range(n)]
        self.num_classes = 3

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def fingerprint(self):
        return hashlib.sha1(self.images.tobytes() + bytes(self.labels)).hexdigest()[:16]


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.PReLU(8), nn.AdaptiveAvgPool2d(4),
                                  nn.Flatten(), nn.Linear(128, 16))

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny nets run fastest single-threaded, above all on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mbf_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = get_model("mbf", num_features=32).eval()
    path = tmp_path_factory.mktemp("teacher") / "backbone.pth"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.fixture(scope="module")
def teacher():
    """A fast teacher for the cache tests (any network works the same way)."""
    torch.manual_seed(4)
    return TorchEmbedder(TinyNet(), name="tiny", channels_last=False)


@pytest.fixture(scope="module")
def faces():
    return TinyFaces(10)


# ---------------------------------------------------------------- torch teacher

def test_torch_teacher_matches_network_and_is_frozen(mbf_checkpoint, faces):
    _, model = mbf_checkpoint
    teacher = TorchEmbedder.from_checkpoint("mbf", mbf_checkpoint[0])
    x = to_tensor(faces.images[:2])
    assert teacher.dim == 32  # read from the checkpoint
    assert "mbf" in teacher.name
    emb = teacher.embed(x)
    with torch.no_grad():
        want = model(x)
    assert emb.dtype == torch.float32 and emb.shape == (2, 32)
    torch.testing.assert_close(emb, want)
    assert not emb.requires_grad
    assert all(not p.requires_grad for p in teacher.model.parameters())
    teacher.model.train()  # even if someone switches it to training mode, it embeds in eval mode
    before = teacher.model.features.layers[3].running_mean.clone()
    torch.testing.assert_close(teacher.embed(x), want)
    assert torch.equal(before, teacher.model.features.layers[3].running_mean)


def test_differentiable_teacher_passes_gradients_to_its_input_only(faces):
    t = TorchEmbedder(TinyNet(), differentiable=True)
    x = to_tensor(faces.images[:2]).requires_grad_()
    t.embed(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in t.model.parameters())


def test_torch_teacher_errors(tmp_path, mbf_checkpoint):
    with pytest.raises(CheckpointError, match="does not exist"):
        TorchEmbedder.from_checkpoint("r100", tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="does not match network 'r18'"):
        TorchEmbedder.from_checkpoint("r18", mbf_checkpoint[0])
    with pytest.raises(ConfigError, match="unknown network"):
        TorchEmbedder.from_checkpoint("resnet9000", mbf_checkpoint[0])


# ---------------------------------------------------------------- ONNX teacher

def export(net, path, batch=None):
    x = torch.zeros(batch or 2, 3, 112, 112)
    dyn = None if batch else {"input.1": {0: "N"}, "embedding": {0: "N"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), input_names=["input.1"], output_names=["embedding"],
                          dynamic_axes=dyn, dynamo=False)


def prepend_pixel_normalisation(src, dst):
    """Make an mxnet-style model: raw 0..255 input, (x - 127.5) * (1/127.5) done by the first nodes."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    g = model.graph
    inner = g.input[0].name
    g.input[0].name = "data"
    g.initializer.extend([helper.make_tensor("mean", TensorProto.FLOAT, [], [127.5]),
                          helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 127.5])])
    nodes = [helper.make_node("Sub", ["data", "mean"], ["centred"], name="_minusscalar0"),
             helper.make_node("Mul", ["centred", "scale"], [inner], name="_mulscalar0")]
    for i, node in enumerate(nodes):
        g.node.insert(i, node)
    onnx.save(model, str(dst))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(3)
    net = TinyNet().eval()
    with torch.no_grad():
        net.body[1].running_mean.uniform_(-0.5, 0.5)
    path = tmp_path_factory.mktemp("onnx") / "w600k_tiny.onnx"
    export(net, path)
    return path, net


def test_onnx_teacher_matches_torch_and_insightface(onnx_model, faces):
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    path, net = onnx_model
    t = OnnxEmbedder(path)
    assert t.dim == 16 and t.input_range == "pm1" and t.name == "w600k_tiny.onnx"
    x = to_tensor(faces.images[:5])
    with torch.no_grad():
        want = net(x)
    emb = t.embed(x)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, want, atol=1e-4, rtol=1e-4)
    # insightface's own recognition wrapper: BGR uint8 images in, (x - 127.5) / 127.5 RGB NCHW to the model
    ref = ArcFaceONNX(model_file=str(path))
    feats = ref.get_feat([img[:, :, ::-1].copy() for img in faces.images[:5]])
    np.testing.assert_allclose(emb.numpy(), feats, atol=1e-4)


def test_onnx_teacher_pixel_input_and_fixed_batch(onnx_model, tmp_path, faces):
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    path, net = onnx_model
    pixel = tmp_path / "mxnet_style.onnx"
    prepend_pixel_normalisation(path, pixel)
    t = OnnxEmbedder(pixel)
    assert t.input_range == "pixel"  # detected like insightface does
    x = to_tensor(faces.images[:3])
    with torch.no_grad():
        want = net(x)
    torch.testing.assert_close(t.embed(x), want, atol=1e-4, rtol=1e-4)
    ref = ArcFaceONNX(model_file=str(pixel))
    assert (ref.input_mean, ref.input_std) == (0.0, 1.0)
    np.testing.assert_allclose(t.embed(x).numpy(), ref.get_feat([im[:, :, ::-1].copy() for im in faces.images[:3]]),
                               atol=1e-4)
    fixed = tmp_path / "batch1.onnx"
    export(net, fixed, batch=1)
    t1 = OnnxEmbedder(fixed)
    assert t1.fixed_batch == 1
    torch.testing.assert_close(t1.embed(x), want, atol=1e-4, rtol=1e-4)


def test_onnx_teacher_errors(tmp_path, onnx_model):
    with pytest.raises(CheckpointError, match="does not exist"):
        OnnxEmbedder(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="cannot read"):
        OnnxEmbedder(bad)
    with pytest.raises(ConfigError, match="gradients"):
        OnnxEmbedder(onnx_model[0], differentiable=True)


def test_build_teacher_specs(mbf_checkpoint, onnx_model, tmp_path, faces):
    ckpt = mbf_checkpoint[0]
    assert isinstance(build_teacher({"network": "mbf", "checkpoint": str(ckpt)}), TorchEmbedder)
    assert isinstance(build_teacher(f"mbf:{ckpt}"), TorchEmbedder)
    assert isinstance(build_teacher({"onnx": str(onnx_model[0])}), OnnxEmbedder)
    assert isinstance(build_teacher(str(onnx_model[0])), OnnxEmbedder)
    assert build_teacher({"network": "mbf", "checkpoint": str(ckpt), "differentiable": True}).differentiable
    with pytest.raises(ConfigError, match="exactly one"):
        build_teacher({"network": "mbf", "onnx": "x.onnx"})
    with pytest.raises(ConfigError, match="unknown key 'lr' in teacher"):
        build_teacher({"network": "mbf", "checkpoint": str(ckpt), "lr": 1})
    with pytest.raises(ConfigError, match="has no checkpoint"):
        build_teacher("r100")
    with pytest.raises(ConfigError, match="cannot understand teacher"):
        build_teacher("resnet9000:backbone.pth")
    with pytest.raises(ConfigError, match="no teacher cache"):
        build_teacher({"cache": str(tmp_path)}, dataset=faces)


# ---------------------------------------------------------------- cache

def reference_rows(teacher, faces):
    x = to_tensor(faces.images)
    return teacher.embed(x).numpy(), teacher.embed(torch.flip(x, dims=[3])).numpy()


def test_cache_build_and_lookup(teacher, faces, tmp_path):
    clean, flipped = reference_rows(teacher, faces)
    cache = build_teacher_cache(teacher, faces, tmp_path / "c32", batch_size=4, dtype="float32", progress=False)
    assert (cache.count, cache.dim) == (10, 16)
    manifest = json.loads((tmp_path / "c32" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["fingerprint"] == faces.fingerprint()
    assert manifest["dtype"] == "float32" and manifest["flipped"] == "computed" and manifest["teacher"] == teacher.name
    assert not (tmp_path / "c32.partial").exists()
    idx, flip = torch.tensor([3, 0, 9, 3]), torch.tensor([False, True, False, True])
    got = cache.lookup(idx, flip)
    assert got.dtype == torch.float32 and got.shape == (4, 16)
    want = np.stack([clean[3], flipped[0], clean[9], flipped[3]])
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    # the flipped row is the teacher's embedding of the mirrored image
    np.testing.assert_allclose(flipped[5], teacher.embed(to_tensor(faces.images[5][:, ::-1].copy())[None])[0].numpy(),
                               atol=1e-5)
    # float16 default: within half precision of the float32 values
    half = build_teacher_cache(teacher, faces, tmp_path / "c16", batch_size=4, progress=False)
    assert half.embeddings.dtype == np.float16
    np.testing.assert_allclose(half.lookup(idx, flip).numpy(), want, rtol=2e-3, atol=2e-3)
    # teacher_targets: cache lookup by index/flip == live teacher on the (flipped) clean faces
    x = to_tensor(faces.images[[3, 0]])
    batch = {"clean": torch.stack([x[0], torch.flip(x[1], dims=[2])]), "index": torch.tensor([3, 0]),
             "flipped": torch.tensor([False, True])}
    np.testing.assert_allclose(teacher_targets(cache, batch).numpy(), teacher_targets(teacher, batch).numpy(),
                               atol=1e-5)
    with pytest.raises(DataError, match="outside"):
        cache.lookup(torch.tensor([10]), torch.tensor([False]))


class FlakyTeacher:
    """Wraps a teacher; raises on call number `fail_at` (to simulate an interrupted build); counts rows."""

    def __init__(self, inner, fail_at=None):
        self.inner, self.fail_at, self.calls, self.rows = inner, fail_at, 0, 0
        self.name, self.dim, self.device = inner.name, inner.dim, inner.device

    def embed(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("power cut")
        self.rows += x.shape[0]
        return self.inner.embed(x)


def test_cache_build_is_atomic_and_resumes(teacher, faces, tmp_path):
    out = tmp_path / "cache"
    flaky = FlakyTeacher(teacher, fail_at=7)  # 2 calls per batch of 2: dies in the 4th batch
    with pytest.raises(RuntimeError, match="power cut"):
        build_teacher_cache(flaky, faces, out, batch_size=2, flush_every=1, dtype="float32", progress=False)
    assert not out.exists()
    assert json.loads((tmp_path / "cache.partial" / "manifest.json").read_text())["done"] == 6
    with pytest.raises(ConfigError, match="no teacher cache"):
        TeacherCache(out)
    with pytest.raises(DataError, match="incomplete"):
        TeacherCache(tmp_path / "cache.partial")
    again = FlakyTeacher(teacher)
    cache = build_teacher_cache(again, faces, out, batch_size=2, flush_every=1, dtype="float32", progress=False)
    assert again.rows == 2 * 4  # only the last 4 samples (clean + flipped) were embedded
    clean, flipped = reference_rows(teacher, faces)
    np.testing.assert_allclose(cache.embeddings[:, 0], clean, atol=1e-5)
    np.testing.assert_allclose(cache.embeddings[:, 1], flipped, atol=1e-5)
    assert not (tmp_path / "cache.partial").exists()
    # a finished cache of the same teacher and data is reused, not recomputed
    third = FlakyTeacher(teacher)
    build_teacher_cache(third, faces, out, dtype="float32", progress=False)
    assert third.calls == 0


def test_rebuild_hint_keeps_flips_reuse_for_every_teacher(teacher, faces, tmp_path):
    """A cache built with flips reused (any teacher, not only dlib) is rebuilt with --flips reuse."""
    from insightface_g2d.teachers.cache import rebuild_hint

    build_teacher_cache(teacher, faces, tmp_path / "c", batch_size=5, progress=False, flips="reused-clean",
                        teacher_spec={"network": "mbf", "checkpoint": "ckpt.pth"})
    with pytest.raises(ConfigError, match="fingerprint") as err:
        TeacherCache(tmp_path / "c", dataset=TinyFaces(10, seed=1))
    assert "--teacher-network mbf --teacher-checkpoint ckpt.pth --flips reuse --out" in str(err.value)
    for spec in ({"onnx": "t.onnx"}, {"network": "mbf"}, {}):
        assert rebuild_hint("d", {"teacher_spec": spec, "flipped": "reused-clean"}).count(" --flips reuse ") == 1
        assert "--flips" not in rebuild_hint("d", {"teacher_spec": spec, "flipped": "computed"})
    assert "--teacher-dlib --flips reuse --out" in rebuild_hint("d", {"teacher_spec": {"dlib": True},
                                                                      "flipped": "reused-clean"})
    assert "--teacher-dlib --flips compute --out" in rebuild_hint("d", {"teacher_spec": {"dlib": True},
                                                                        "flipped": "computed"})


def test_cache_mismatches_say_what_differs(teacher, faces, tmp_path):
    build_teacher_cache(teacher, faces, tmp_path / "c", batch_size=5, progress=False,
                        dataset_spec="synthetic:ids=3", teacher_spec={"network": "mbf", "checkpoint": "ckpt.pth"})
    other = TinyFaces(10, seed=1)
    with pytest.raises(ConfigError, match="fingerprint") as err:
        TeacherCache(tmp_path / "c", dataset=other)
    # the rebuild command is for the dataset in use now, never the one the stale cache was built from
    assert "g2d-cache build --dataset DATASET --teacher-network mbf --teacher-checkpoint ckpt.pth" in str(err.value)
    other.spec = "faces_v2"
    with pytest.raises(ConfigError, match="fingerprint") as err:
        TeacherCache(tmp_path / "c", dataset=other)
    assert "g2d-cache build --dataset faces_v2 --teacher-network mbf --teacher-checkpoint ckpt.pth" in str(err.value)
    assert "synthetic:ids=3" not in str(err.value)
    # ... into a folder of its own: the old cache is right for its own dataset and is not overwritten
    new = f"{tmp_path / 'c'}_{other.fingerprint()[:8]}"
    assert f"ckpt.pth --out {new}, then set config.teacher = dict(cache={new!r})" in str(err.value)
    assert "--overwrite" not in str(err.value)
    with pytest.raises(ConfigError, match="12 samples"):
        TeacherCache(tmp_path / "c", dataset=TinyFaces(12))
    with pytest.raises(ConfigError, match="512-d are needed"):
        TeacherCache(tmp_path / "c", dataset=faces, dim=512)
    with pytest.raises(ConfigError, match="--overwrite"):
        build_teacher_cache(teacher, TinyFaces(10, seed=1), tmp_path / "c", progress=False)
    # a cache wrapped in a MaskedPairDataset-like object is checked against its base
    wrapper = type("Wrapped", (), {"base": faces})()
    assert isinstance(build_teacher({"cache": str(tmp_path / "c")}, dataset=wrapper), TeacherCache)
    # a damaged array is refused
    np.save(tmp_path / "c" / "embeddings.npy", np.zeros((10, 2, 15), np.float16))
    with pytest.raises(DataError, match="damaged"):
        TeacherCache(tmp_path / "c")


def test_import_embeddings(faces, tmp_path):
    rng = np.random.default_rng(5)
    clean, flipped = rng.normal(size=(10, 8)).astype(np.float32), rng.normal(size=(10, 8)).astype(np.float32)
    cache = import_embeddings(clean, faces, tmp_path / "a", "external", dtype="float32")
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["flipped"] == "reused-clean"
    torch.testing.assert_close(cache.lookup(torch.tensor([2, 2]), torch.tensor([False, True])),
                               torch.from_numpy(clean[[2, 2]]))
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "flipped.npy", flipped)
    both = import_embeddings(tmp_path / "clean.npy", faces, tmp_path / "b", "external", flipped=tmp_path / "flipped.npy")
    np.testing.assert_allclose(both.lookup(torch.tensor([4]), torch.tensor([True])).numpy(), flipped[[4]], rtol=1e-3)
    with pytest.raises(ConfigError, match="9 rows but the dataset has 10"):
        import_embeddings(clean[:9], faces, tmp_path / "c", "x")
    with pytest.raises(DataError, match="NaN"):
        import_embeddings(np.full((10, 8), np.nan, np.float32), faces, tmp_path / "d", "x")
    with pytest.raises(DataError, match="flipped embeddings have shape"):
        import_embeddings(clean, faces, tmp_path / "e", "x", flipped=flipped[:, :4])


# ---------------------------------------------------------------- g2d-cache

def test_cli_build_import_info(monkeypatch, tmp_path, onnx_model, faces, capsys):
    from insightface_g2d.cli import cache as cli
    from insightface_g2d.cli.common import run_cli

    monkeypatch.setattr(cli, "_dataset", lambda spec, skip_bad=False: faces if spec == "tiny" else TinyFaces(10, seed=2))
    out = tmp_path / "cache"
    assert run_cli(cli.main, ["build", "--dataset", "tiny", "--teacher-onnx", str(onnx_model[0]), "--out", str(out),
                              "--batch-size", "4", "--device", "cpu"]) == 0
    assert "wrote 10 x 2 x 16" in capsys.readouterr().out
    assert run_cli(cli.main, ["info", str(out), "--dataset", "tiny"]) == 0
    info = capsys.readouterr().out
    assert "count        10" in info and "matches dataset tiny" in info
    assert run_cli(cli.main, ["info", str(out), "--dataset", "other"]) == 2
    err = capsys.readouterr().err.strip()
    # the rebuild command names the dataset in use now (this test's stand-in has no spec), not "tiny"
    assert err.startswith("error:") and "fingerprint" in err and "--dataset DATASET" in err and "\n" not in err
    assert "--overwrite" not in err and f"--out {out}_" in err
    np.save(tmp_path / "emb.npy", np.ones((10, 4), np.float32))
    assert run_cli(cli.main, ["import", "--dataset", "tiny", "--embeddings", str(tmp_path / "emb.npy"),
                              "--out", str(tmp_path / "imp")]) == 0
    assert TeacherCache(tmp_path / "imp", faces).name == "emb"
    assert run_cli(cli.main, ["build", "--dataset", "tiny", "--teacher-network", "mbf", "--teacher-checkpoint",
                              str(tmp_path / "missing.pth"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_cli(cli.main, ["build", "--dataset", "tiny", "--teacher-network", "mbf", "--out", str(tmp_path / "x")]) == 2
    assert "--teacher-checkpoint" in capsys.readouterr().err


class _RecordingType(TorchEmbedder):
    """Stands in for a CPU-bound type (dlib's options) in the registry: records the options it is built with."""

    options = ("workers",)
    built = []

    @classmethod
    def from_spec(cls, value, options, ctx):
        cls.built.append(dict(options))
        torch.manual_seed(0)
        return cls(TinyNet(), name="recording", channels_last=False)


def test_cli_jobs_reach_the_teacher_whichever_way_it_is_named(monkeypatch, tmp_path, faces, onnx_model):
    """--jobs N is the spec's `workers` for --teacher-dlib and --teacher dlib alike, and only for a
    type that takes that option."""
    from insightface_g2d.cli import cache as cli
    from insightface_g2d.cli.common import run_cli
    from insightface_g2d.embedders import registry

    monkeypatch.setattr(cli, "_dataset", lambda spec, skip_bad=False: faces)
    monkeypatch.setitem(registry.EMBEDDER_TYPES, "dlib", _RecordingType)
    monkeypatch.setattr(_RecordingType, "built", [])
    specs = []
    for i, teacher in enumerate((["--teacher-dlib"], ["--teacher", "dlib"])):
        out = tmp_path / f"c{i}"
        assert run_cli(cli.main, ["build", "--dataset", "tiny", *teacher, "--jobs", "3", "--out", str(out),
                                  "--batch-size", "5", "--device", "cpu", "--dtype", "float32"]) == 0
        specs.append(json.loads((out / "manifest.json").read_text())["teacher_spec"])
    assert _RecordingType.built == [{"workers": 3}, {"workers": 3}]
    assert specs == [{"dlib": True, "workers": 3}] * 2
    # a type without the option is left alone (an ONNX model, by flag and by spec)
    for i, teacher in enumerate((["--teacher-onnx", str(onnx_model[0])], ["--teacher", str(onnx_model[0])])):
        out = tmp_path / f"o{i}"
        assert run_cli(cli.main, ["build", "--dataset", "tiny", *teacher, "--jobs", "3", "--out", str(out),
                                  "--batch-size", "5", "--device", "cpu"]) == 0
        assert "workers" not in json.loads((out / "manifest.json").read_text())["teacher_spec"]
    assert run_cli(cli.main, ["build", "--dataset", "tiny", "--teacher", "dlib", "--teacher-checkpoint", "x.pth",
                              "--out", str(tmp_path / "x")]) == 2


def test_cache_of_synthetic_dataset_serves_masked_pairs(monkeypatch, tmp_path, onnx_model, capsys):
    """g2d-cache build through the real dataset factory; lookups match the live teacher on the
    MaskedPairDataset's clean (possibly mirrored) faces."""
    from insightface_g2d.cli.cache import main
    from insightface_g2d.data.factory import build_face_dataset
    from insightface_g2d.masks.masked_pairs import MaskedPairDataset

    spec = "synthetic:ids=2,per_id=3,seed=1"
    assert main(["build", "--dataset", spec, "--teacher-onnx", str(onnx_model[0]), "--out", str(tmp_path / "c"),
                 "--batch-size", "4", "--device", "cpu"]) in (0, None)
    base = build_face_dataset(spec)
    pairs = MaskedPairDataset(base, seed=3)
    cache = build_teacher({"cache": str(tmp_path / "c")}, dataset=pairs)
    live = OnnxEmbedder(onnx_model[0])
    items = [pairs[i] for i in range(len(pairs))]
    mirrored = [not torch.equal(it["clean"], to_tensor(base[i][0])) for i, it in enumerate(items)]
    assert any(mirrored) and not all(mirrored)
    for it, flip in zip(items, mirrored):
        if flip:
            torch.testing.assert_close(it["clean"], to_tensor(base[int(it["index"])][0]).flip(2))
    got = cache.lookup(torch.stack([it["index"] for it in items]), torch.tensor(mirrored))
    want = live.embed(torch.stack([it["clean"] for it in items]))
    torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-3)


def test_cache_build_can_reuse_clean_rows_for_flips(teacher, faces, tmp_path):
    """flips="reused-clean" runs a slow teacher once per face; the mirrored row repeats the clean one."""
    counted = FlakyTeacher(teacher)
    cache = build_teacher_cache(counted, faces, tmp_path / "reuse", batch_size=4, dtype="float32", progress=False,
                                flips="reused-clean")
    clean, _ = reference_rows(teacher, faces)
    assert counted.rows == len(faces)  # half the teacher work of a full build
    np.testing.assert_allclose(cache.embeddings[:, 0], clean, atol=1e-5)
    np.testing.assert_array_equal(cache.embeddings[:, 0], cache.embeddings[:, 1])
    assert json.loads((tmp_path / "reuse" / "manifest.json").read_text())["flipped"] == "reused-clean"
    # a cache with computed flips is a different cache: rebuilding over it needs --overwrite
    with pytest.raises(ConfigError, match="overwrite"):
        build_teacher_cache(teacher, faces, tmp_path / "reuse", batch_size=4, dtype="float32", progress=False)
    with pytest.raises(ConfigError, match="flips"):
        build_teacher_cache(teacher, faces, tmp_path / "x", flips="mirrored", progress=False)

"""Contract of every registered teacher / model type (embedders.registry.EMBEDDER_TYPES).

Each type is built through the factory from a tiny spec, as config.teacher and a model spec of
g2d-eval would build it, and must: report its embedding size truthfully, give the same embeddings
in one batch as one face at a time, implement flip as the sum of the face's and its mirror
image's embeddings, and reject misspelt keys with a did-you-mean. A new type needs a tiny case in
CASES below (the first test fails until it has one).
"""
import hashlib
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from insightface_g2d import get_model
from insightface_g2d.data.transforms import to_tensor
from insightface_g2d.embedders import registry
from insightface_g2d.embedders.base import FaceEmbedder
from insightface_g2d.embedders.factory import build_embedder, build_teacher, check_spec, spec_keys
from insightface_g2d.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyNet(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.PReLU(8), nn.AdaptiveAvgPool2d(4),
                                  nn.Flatten(), nn.Linear(128, dim))

    def forward(self, x):
        return self.body(x)


class TinyFaces(torch.utils.data.Dataset):
    def __init__(self, n=6, seed=0):
        self.images = np.random.default_rng(seed).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i % 2

    def fingerprint(self):
        return hashlib.sha1(self.images.tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A g2d_t checkpoint, a TinyNet exported to ONNX, and a teacher cache built from the checkpoint."""
    from insightface_g2d.embedders.torch_network import TorchEmbedder
    from insightface_g2d.teachers import build_teacher_cache

    d = tmp_path_factory.mktemp("contract")
    torch.manual_seed(0)
    torch.save(get_model("g2d_t", num_features=24).state_dict(), d / "g2d_t.pt")
    net = TinyNet().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, 3, 112, 112),), str(d / "tiny.onnx"), input_names=["input.1"],
                          output_names=["embedding"], dynamic_axes={"input.1": {0: "N"}, "embedding": {0: "N"}},
                          dynamo=False)
    faces = TinyFaces()
    source = TorchEmbedder.from_checkpoint("g2d_t", d / "g2d_t.pt", channels_last=False)
    build_teacher_cache(source, faces, d / "cache", batch_size=4, dtype="float32", progress=False)
    return d, faces, source


def _dlib(files):
    pytest.importorskip("dlib", reason="the [dlib] extra is not installed")
    pytest.importorskip("face_recognition_models", reason="the [dlib] extra is not installed")
    return dict(spec="dlib", value=True)


def _stage(files):
    torch.manual_seed(5)
    net = TinyNet(12)
    return dict(spec="stage:base", value="base", run_network=lambda name: net)


# type key -> files -> dict(spec, value of the type key, optional run_network)
CASES = {
    "cache": lambda files: dict(spec={"cache": str(files[0] / "cache")}, value=str(files[0] / "cache")),
    "onnx": lambda files: dict(spec=str(files[0] / "tiny.onnx"), value=str(files[0] / "tiny.onnx")),
    "dlib": _dlib,
    "stage": _stage,
    "network": lambda files: dict(spec={"network": "g2d_t", "checkpoint": str(files[0] / "g2d_t.pt")},
                                  value="g2d_t"),
}
TYPES = list(registry.EMBEDDER_TYPES)


def test_every_registered_type_has_a_contract_case():
    missing = [key for key in registry.EMBEDDER_TYPES if key not in CASES]
    assert not missing, f"add a tiny case for {missing} to CASES in {__file__}"


def _faces(n=3, seed=1):
    return to_tensor(np.random.default_rng(seed).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8))


@pytest.mark.parametrize("key", TYPES)
def test_embedding_size_batching_and_flip(key, files):
    case = CASES[key](files)
    teacher = build_teacher(case["spec"], dataset=files[1], run_network=case.get("run_network"))
    assert isinstance(teacher, registry.EMBEDDER_TYPES[key])
    if not isinstance(teacher, FaceEmbedder):
        return _check_lookup_teacher(teacher, files)
    x = _faces()
    out = teacher.embed(x)
    assert out.dtype == torch.float32 and out.shape == (3, teacher.dim) and out.device == x.device
    # one batch == one face at a time
    single = torch.cat([teacher.embed(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(out, single, atol=1e-4, rtol=1e-4)
    # flip: the face's embedding plus its mirror image's, computed independently here
    mirrored = torch.stack([torch.flip(face, dims=[2]) for face in x])
    torch.testing.assert_close(teacher.embed(x, flip=True), out + teacher.embed(mirrored), atol=1e-4, rtol=1e-4)
    # evaluation's loop over uint8 images: any batch size, flip or not, the same numbers
    images = np.random.default_rng(1).integers(0, 256, size=(3, 112, 112, 3), dtype=np.uint8)
    prepare = getattr(teacher, "prepare_images", None)
    if prepare is None:  # uint8 faces become [-1, 1] tensors
        plain, mirror = out, teacher.embed(mirrored)
    else:  # the network prepares uint8 faces its own way (dlib's chip): that input, embedded alike
        plain = teacher.embed(prepare(images))
        mirror = teacher.embed(prepare(np.ascontiguousarray(images[:, :, ::-1])))
    np.testing.assert_allclose(teacher.embed_images(images, batch_size=2, flip=False, progress=False),
                               plain.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(teacher.embed_images(images, batch_size=3, flip=True, progress=False),
                               (plain + mirror).numpy(), atol=1e-4, rtol=1e-4)
    # the same spec as a model to evaluate embeds the same way
    evaluated = build_embedder(case["spec"], run_network=case.get("run_network"))
    assert evaluated.dim == teacher.dim
    torch.testing.assert_close(evaluated.embed(x), out, atol=1e-4, rtol=1e-4)


def _check_lookup_teacher(cache, files):
    """A teacher cache: rows of the dataset's faces and their mirror images, as the teacher that built it."""
    d, faces, source = files
    idx = torch.tensor([4, 0, 2])
    rows = cache.lookup(idx, torch.tensor([False, True, False]))
    assert rows.dtype == torch.float32 and rows.shape == (3, cache.dim)
    one_by_one = torch.cat([cache.lookup(idx[i:i + 1], torch.tensor([f])) for i, f in enumerate([False, True, False])])
    torch.testing.assert_close(rows, one_by_one)
    x = to_tensor(faces.images[[4, 0, 2]])
    want = source.embed(torch.stack([x[0], torch.flip(x[1], dims=[2]), x[2]]))
    torch.testing.assert_close(rows, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="teacher cache"):
        build_embedder({"cache": str(d / "cache")})


@pytest.mark.parametrize("key", TYPES)
def test_spec_keys_are_checked_with_did_you_mean(key, files):
    case = CASES[key](files)
    cls = registry.EMBEDDER_TYPES[key]
    with pytest.raises(ConfigError, match=rf"unknown key '{key}s' in config.teacher \(did you mean '{key}'\?\)"):
        check_spec({key: case["value"], f"{key}s": 1})
    for option in cls.options:
        with pytest.raises(ConfigError, match=rf"unknown key '{option}s'.*did you mean '{option}'"):
            check_spec({key: case["value"], f"{option}s": 1})
    foreign = [k for k in spec_keys() if k not in registry.EMBEDDER_TYPES and k not in cls.options]
    with pytest.raises(ConfigError, match=f"does not apply to a '{key}' model"):
        check_spec({key: case["value"], foreign[0]: 1})
    other = next(k for k in registry.EMBEDDER_TYPES if k != key)
    with pytest.raises(ConfigError, match="exactly one"):
        build_teacher({key: case["value"], other: "x"})

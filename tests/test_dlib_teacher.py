"""dlib's ResNet as teacher and evaluation model (the [dlib] extra): our PyTorch network against dlib
itself; real-face checks need LFW."""
import sys

import cv2
import numpy as np
import pytest
import torch

from insightface_g2d.errors import ConfigError

dlib = pytest.importorskip("dlib", reason="the [dlib] extra is not installed (pip install -e .[dlib])")
pytest.importorskip("face_recognition_models", reason="the [dlib] extra is not installed")

from insightface_g2d.backbones.dlib_resnet import CHIP_SIZE, CROP_TO_CHIP  # noqa: E402
from insightface_g2d.faces.dlib_landmarks import model_path as model_file  # noqa: E402
from insightface_g2d.embedders.dlib_resnet import DlibBinEmbedder, DlibResNetEmbedder, crops_to_chips  # noqa: E402


def chip_mapping(details):
    """dlib chip_details -> 2x3 affine map from the source image to the chip (what
    dlib.extract_image_chip samples: the rectangle rotated by `angle`, corners to chip corners)."""
    r, a = details.rect, details.angle
    cx, cy = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
    c, s = np.cos(a), np.sin(a)

    def rotate(x, y):
        dx, dy = x - cx, y - cy
        return [cx + c * dx - s * dy, cy + s * dx + c * dy]

    src = np.float32([rotate(r.left(), r.top()), rotate(r.right(), r.top()), rotate(r.right(), r.bottom())])
    dst = np.float32([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def fit_crop_to_chip(images, landmarks):
    """How CROP_TO_CHIP was derived (on 298 LFW faces). Fit the crop -> chip map on photos: images,
    a list of uint8 H x W x 3 RGB; landmarks, their [5, 2] ArcFace-order points. Faces dlib's HOG
    detector misses are skipped.
    Returns (2x3 matrix with rotation 0, per-point residuals in chip pixels, faces used)."""
    from insightface_g2d.data.align import alignment_matrix, transform_points

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(model_file("shape_predictor_5_face_landmarks.dat"))
    crop_pts, chip_pts = [], []
    for img, lmk in zip(images, landmarks):
        faces = detector(img, 1)
        if not faces:
            continue
        h, w = img.shape[:2]
        face = min(faces, key=lambda f: (f.center().x - w / 2) ** 2 + (f.center().y - h / 2) ** 2)
        details = dlib.get_face_chip_details(predictor(img, face), CHIP_SIZE, 0.25)
        crop_pts.append(transform_points(lmk, alignment_matrix(lmk)))
        chip_pts.append(transform_points(lmk, chip_mapping(details)))
    if not crop_pts:
        raise ValueError("dlib found no face in any of the images")
    src, dst = np.concatenate(crop_pts), np.concatenate(chip_pts)
    # scale + translation, least squares: dst = s * src + t
    sc, dc = src - src.mean(0), dst - dst.mean(0)
    s = float((sc * dc).sum() / (sc ** 2).sum())
    t = dst.mean(0) - s * src.mean(0)
    matrix = np.array([[s, 0.0, t[0]], [0.0, s, t[1]]])
    residuals = np.linalg.norm(src * s + t - dst, axis=1)
    return matrix, residuals, len(crop_pts)


@pytest.fixture(scope="module")
def recognizer():
    return DlibResNetEmbedder()


@pytest.fixture(scope="module")
def dlib_itself():
    return DlibBinEmbedder()


def test_chips_are_the_crop_under_the_fixed_map():
    crop = np.random.default_rng(0).integers(0, 256, (1, 112, 112, 3), dtype=np.uint8)
    chip = crops_to_chips(crop)
    assert chip.shape == (1, CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.uint8
    # a single bright pixel of the crop lands where the map sends it (the chip is 1.53x larger)
    dot = np.zeros((1, 112, 112, 3), np.uint8)
    dot[0, 60, 40] = 255
    ys, xs = np.nonzero(crops_to_chips(dot)[0, :, :, 0])
    s, tx, ty = CROP_TO_CHIP[0, 0], CROP_TO_CHIP[0, 2], CROP_TO_CHIP[1, 2]
    assert abs(xs.mean() - (s * 40 + tx)) < 1.0 and abs(ys.mean() - (s * 60 + ty)) < 1.0
    # a constant crop gives a constant chip (edge replication, no black border)
    flat = np.full((1, 112, 112, 3), 77, np.uint8)
    assert (crops_to_chips(flat) == 77).all()


def test_dlib_itself_embeds_and_remembers_faces(monkeypatch):
    rec = DlibBinEmbedder(memoize=True)
    calls = []
    real = rec._compute
    monkeypatch.setattr(rec, "_compute", lambda crops: calls.append(len(crops)) or real(crops))
    faces = np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    first = rec.embed_crops(faces)
    again = rec.embed_crops(np.concatenate([faces[1:], faces[:1]]))
    assert first.shape == (3, 128) and first.dtype == np.float32
    assert calls == [3]  # the second call found every face in the memo
    np.testing.assert_array_equal(again, np.concatenate([first[1:], first[:1]]))


def test_factory_builds_the_torch_network_by_default(recognizer):
    from insightface_g2d.embedders.factory import build_embedder, build_teacher

    teacher = build_teacher("dlib")
    assert isinstance(teacher, DlibResNetEmbedder) and teacher.dim == 128
    faces = torch.rand(2, 3, 112, 112) * 2 - 1
    live = build_teacher({"dlib": True}, differentiable=True)
    x = faces.clone().requires_grad_()
    live.embed(x).square().sum().backward()
    assert x.grad.abs().sum() > 0  # gradients reach the faces; the weights stay frozen
    assert not any(p.requires_grad for p in live.model.parameters())
    np.testing.assert_allclose(build_embedder("dlib")(faces).numpy(), teacher.embed(faces).numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="cannot pass gradients"):
        build_teacher({"dlib": True, "engine": "dlib-bin"}, differentiable=True)
    with pytest.raises(ConfigError, match="did you mean 'dlib-bin'"):
        build_teacher({"dlib": True, "engine": "dlibbin"})


def test_torch_network_equals_dlib_on_random_chips(recognizer, dlib_itself):
    """Our network on dlib's own 150 x 150 chips against compute_face_descriptor (no LFW needed)."""
    chips = np.random.default_rng(2).integers(0, 256, (4, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    ref = dlib_itself.embed_chips(chips)
    x = torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 127.5 - 1
    ours = recognizer.embed(x).numpy()
    assert np.abs(ours - ref).max() < 1e-4


def test_torch_engine_needs_no_dlib(monkeypatch):
    """Without dlib the PyTorch engine still loads the model file; dlib itself says how to install."""
    from insightface_g2d.embedders import dlib_resnet

    monkeypatch.setitem(sys.modules, "dlib", None)
    assert dlib_resnet.DlibResNetEmbedder().dim == 128
    with pytest.raises(ConfigError, match=r"pip install -e \.\[dlib\]"):
        dlib_resnet.DlibBinEmbedder()
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(ConfigError, match=r"pip install -e \.\[dlib\]"):
        dlib_resnet.DlibResNetEmbedder()


def _load_lfw(lfw_root, rels):
    from insightface_g2d.data.align import read_landmarks_tsv
    from insightface_g2d.data.image_io import read_image_file

    lm = read_landmarks_tsv(lfw_root / "landmarks5.tsv")
    return [read_image_file(lfw_root / "lfw-deepfunneled" / r) for r in rels], [lm[r] for r in rels]


def test_fixed_map_matches_dlib_own_alignment(lfw_root):
    """Re-fit the crop -> chip map on 30 LFW faces: the shipped constant agrees."""
    from insightface_g2d.data.align import read_landmarks_tsv

    rels = sorted(read_landmarks_tsv(lfw_root / "landmarks5.tsv"))[::400][:30]
    images, landmarks = _load_lfw(lfw_root, rels)
    matrix, residuals, used = fit_crop_to_chip(images, landmarks)
    assert used >= 25
    assert abs(matrix[0, 0] / CROP_TO_CHIP[0, 0] - 1) < 0.02
    assert np.abs(matrix[:, 2] - CROP_TO_CHIP[:, 2]).max() < 2.0  # chip pixels (of 150)
    assert np.median(residuals) < 4.0


def test_teacher_separates_real_people(lfw_root, recognizer):
    """On 12 genuine and 12 impostor DevTest pairs, dlib's own distance threshold (0.6) on the
    aligned crops gets almost every pair right."""
    from insightface_g2d.data.align import align_face
    from insightface_g2d.evaluation.pairs import read_pairs

    pairs = read_pairs(lfw_root / "pairsDevTest.txt")
    pick = list(range(12)) + list(range(500, 512))
    rels = [pairs.paths[2 * i + j] for i in pick for j in (0, 1)]
    images, landmarks = _load_lfw(lfw_root, rels)
    crops = np.stack([align_face(im, lm) for im, lm in zip(images, landmarks)])
    emb = recognizer.embed_images(crops, flip=False, progress=False)
    dist = np.linalg.norm(emb[0::2] - emb[1::2], axis=1)
    same = np.array([pairs.issame[i] for i in pick])
    assert ((dist < 0.6) == same).mean() >= 22 / 24


def test_torch_network_equals_dlib_on_lfw_chips(lfw_root, recognizer, dlib_itself):
    """On 220 LFW faces, each made into dlib's chip (cv2, the fixed map), our network's descriptor is
    within 1e-3 of dlib's compute_face_descriptor in every component (cosine >= 0.9999); fed the
    112 crop itself (the chip made inside the network), within 1e-2 (cosine >= 0.9999)."""
    from insightface_g2d.data.align import align_face, read_landmarks_tsv
    from insightface_g2d.data.transforms import to_tensor

    rels = sorted(read_landmarks_tsv(lfw_root / "landmarks5.tsv"))[::60][:220]
    images, landmarks = _load_lfw(lfw_root, rels)
    crops = np.stack([align_face(im, lm) for im, lm in zip(images, landmarks)])
    chips = crops_to_chips(crops)
    ref = dlib_itself.embed_chips(chips)
    ours = recognizer.embed(torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 127.5 - 1).numpy()
    from_crops = recognizer.embed(to_tensor(crops)).numpy()

    def cosine(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    assert len(ref) == 220
    assert np.abs(ours - ref).max() < 1e-3 and cosine(ours, ref).min() >= 0.9999
    assert np.abs(from_crops - ref).max() < 1e-2 and cosine(from_crops, ref).min() >= 0.9999
    # evaluation embeds uint8 photos: the chip is made as dlib's pipeline makes it, so the figures
    # are dlib's own (mirror images included)
    for flip in (False, True):
        np.testing.assert_allclose(recognizer.embed_images(crops[:40], flip=flip, progress=False),
                                   dlib_itself.embed_images(crops[:40], flip=flip, progress=False), atol=1e-5)

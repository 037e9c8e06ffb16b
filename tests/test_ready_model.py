"""The ready masked-face model the kit ships (recognition/ready.py): dlib's front, the shipped back."""
import numpy as np
import pytest
import torch

pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")

from insightface_g2d.backbones.checkpoint import pretrained_state_dict, read_state_dict  # noqa: E402
from insightface_g2d.backbones.dlib_resnet import default_model_file  # noqa: E402
from insightface_g2d.evaluation.thresholds import pick_threshold, read_thresholds  # noqa: E402
from insightface_g2d.recognition.ready import HERE, READY_MODELS, build_ready_model, thresholds_file  # noqa: E402


@pytest.fixture(scope="module")
def ready():
    return build_ready_model("g2d_lfw")


def test_front_is_dlibs_and_back_is_the_shipped_weights(ready):
    state = ready.state_dict()
    dlib = pretrained_state_dict(ready, read_state_dict(default_model_file()))
    shipped = read_state_dict(HERE / READY_MODELS["g2d_lfw"].weights)
    assert shipped and all(k.startswith("reformer.") for k in shipped)
    for key, value in state.items():
        want = shipped[key].to(value.dtype) if key in shipped else dlib[key]
        assert torch.equal(value, want), key
    assert sum(not torch.equal(state[k], dlib[k]) for k in shipped) == len(shipped)  # every shipped entry differs


def test_embeds_and_verifies_with_its_own_thresholds(ready, lfw_root):
    from insightface_g2d import FaceRecognizer

    doc = read_thresholds(thresholds_file("g2d_lfw"))
    value, where = pick_threshold(doc)
    assert 0 < value < 1 and "masked-clean" in where
    rec = FaceRecognizer("g2d_lfw")
    photos = lfw_root / "lfw-deepfunneled" / "Abdullah_Gul"
    same = rec.verify(photos / "Abdullah_Gul_0013.jpg", photos / "Abdullah_Gul_0014.jpg")
    other = rec.verify(photos / "Abdullah_Gul_0013.jpg",
                       lfw_root / "lfw-deepfunneled" / "AJ_Lamas" / "AJ_Lamas_0001.jpg")
    assert same.threshold == pytest.approx(value) and "masked-clean" in same.threshold_name
    assert same.same and not other.same and same.score > other.score
    x = torch.zeros(2, 3, 112, 112)
    with torch.no_grad():
        assert ready(x).shape == (2, 128) and np.isfinite(ready(x).numpy()).all()

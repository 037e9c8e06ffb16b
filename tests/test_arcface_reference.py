"""Cross-check the teacher networks against arcface_torch's own code (needs ARCFACE_TORCH_ROOT)."""
import os
import sys

import pytest
import torch

from insightface_g2d import get_model

ROOT = os.environ.get("ARCFACE_TORCH_ROOT")
pytestmark = pytest.mark.skipif(
    not ROOT, reason="set ARCFACE_TORCH_ROOT to a recognition/arcface_torch checkout to cross-check the teachers"
)


@pytest.mark.parametrize("name", ["r18", "r50", "mbf"])
def test_arcface_torch_weights_give_identical_outputs(name):
    sys.path.insert(0, ROOT)
    try:
        from backbones import get_model as arcface_get_model
    finally:
        sys.path.remove(ROOT)
    torch.manual_seed(0)
    ref = arcface_get_model(name, dropout=0.0, fp16=False, num_features=512).eval()
    for m in ref.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours = get_model(name).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))

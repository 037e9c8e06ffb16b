"""A g2d-train-like run folder for tests: model.pt of a tiny random network and the
run_summary.json naming it (what FaceRecognizer and g2d-face read from a run)."""
import json

import torch

from insightface_g2d.backbones.registry import get_model


def write_tiny_run(folder, seed=0, network="g2d_t", num_features=32):
    """Write the run into existing folder `folder`; returns it."""
    torch.manual_seed(seed)
    torch.save(get_model(network, num_features=num_features).state_dict(), folder / "model.pt")
    (folder / "run_summary.json").write_text(json.dumps({"network": network, "model": str(folder / "model.pt")}))
    return folder

"""Ready models the kit ships: masked-face networks usable right after install, by name.

A ready model ships only the weights that differ from a file already installed: `g2d_lfw` is arm (f)
of the LFW comparison (G2D cut from dlib's ResNet after layer2, front frozen, back distilled on masked
LFW DevTrain faces; `g2d-lfw compare --arm g2d_pretrained` rebuilds it), so its encoder is dlib's own
front (read from dlib's model file, the `[dlib]` extra) and the package holds its reformer in half
precision (10.5 MB) with the thresholds measured on LFW DevTest. Trained on LFW: research use, as LFW.
"""
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError

HERE = Path(__file__).resolve().parent / "ready_models"


@dataclass(frozen=True)
class ReadyModel:
    network: str        # the backbones registry name
    base: str           # where the weights not shipped come from: "dlib" (dlib's model file)
    weights: str        # file in ready_models/: the state-dict entries that differ from the base's
    thresholds: str     # file in ready_models/: thresholds measured as the file says
    embedding_size: int = 128


READY_MODELS = {
    "g2d_lfw": ReadyModel("g2d_dlib", "dlib", "g2d_lfw.reformer.fp16.pt", "g2d_lfw.thresholds.json"),
}


def thresholds_file(name):
    return HERE / READY_MODELS[name].thresholds


def build_ready_model(name):
    """The ready model `name` as an nn.Module in eval mode (float32)."""
    from ..backbones import get_model
    from ..backbones.checkpoint import pretrained_state_dict, read_state_dict

    ready = READY_MODELS[name]
    model = get_model(ready.network, num_features=ready.embedding_size)
    if ready.base == "dlib":
        from ..backbones.dlib_resnet import default_model_file

        base = read_state_dict(default_model_file())
    else:
        raise CheckpointError(f"ready model {name!r}: unknown base {ready.base!r}")
    state = pretrained_state_dict(model, base)
    shipped = read_state_dict(HERE / ready.weights)
    unknown = sorted(set(shipped) - set(state))
    if unknown:
        raise CheckpointError(f"{HERE / ready.weights}: entries {', '.join(unknown[:3])} are not in {ready.network}; "
                              "reinstall insightface-g2d")
    for key, value in shipped.items():
        if value.shape != state[key].shape:
            raise CheckpointError(f"{HERE / ready.weights}: {key} is {tuple(value.shape)}, the network's "
                                  f"{tuple(state[key].shape)}; reinstall insightface-g2d")
        state[key] = value.to(state[key].dtype)
    model.load_state_dict(state, strict=True)
    return model.eval()

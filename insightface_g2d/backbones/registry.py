"""Models built by name, with arcface_torch's `get_model(name, **kwargs)` calling convention."""
from .g2d import G2D_SPECS, build_g2d
from .iresnet import IRESNET_DEPTHS, build_iresnet
from .mobilefacenet import build_mobilefacenet

_BUILDERS = {}
for _name in G2D_SPECS:
    _BUILDERS[_name] = build_g2d
for _name in IRESNET_DEPTHS:
    _BUILDERS[_name] = build_iresnet
for _name in ("mbf", "mbf_large"):
    _BUILDERS[_name] = build_mobilefacenet


def list_models():
    """Names `get_model` accepts."""
    return sorted(_BUILDERS)


def get_model(name, dropout=0.0, fp16=False, num_features=512, **kwargs):
    """Build a backbone: N x 3 x 112 x 112 RGB in [-1, 1] -> N x num_features.

    Same call as arcface_torch's `backbones.get_model`; extra keyword arguments it passes to
    some networks (none used here) are accepted and ignored so its scripts work unchanged.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown network {name!r}; known networks: {', '.join(list_models())}")
    return _BUILDERS[name](name, dropout=dropout, num_features=num_features, fp16=fp16)

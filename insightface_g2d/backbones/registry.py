"""Models built by name, with arcface_torch's `get_model(name, **kwargs)` calling convention."""
from .dlib_resnet import build_dlib_resnet
from .g2d import G2D_SPECS, build_g2d
from .iresnet import IRESNET_DEPTHS, build_iresnet
from .mobilefacenet import build_mobilefacenet
from .split import build_split_g2d, parse_split_name, split_names
from .upper_face import add_lower_face_cut, parse_upper_name

_BUILDERS = {}
for _name in G2D_SPECS:
    _BUILDERS[_name] = build_g2d
for _name in IRESNET_DEPTHS:
    _BUILDERS[_name] = build_iresnet
for _name in ("mbf", "mbf_large"):
    _BUILDERS[_name] = build_mobilefacenet
_BUILDERS["dlib_resnet"] = build_dlib_resnet
for _name in split_names():
    _BUILDERS[_name] = build_split_g2d


def list_models():
    """Names `get_model` accepts (split G2D networks also as `g2d_<network>@<step>`, see split.py)."""
    return sorted(_BUILDERS)


def is_model(name):
    """Whether `get_model` builds `name`."""
    upper = parse_upper_name(name)
    if upper is not None:
        return is_model(upper[0])
    return name in _BUILDERS or parse_split_name(name) is not None


def get_model(name, dropout=0.0, fp16=False, num_features=512, **kwargs):
    """Build a backbone: N x 3 x 112 x 112 RGB in [-1, 1] -> N x num_features.

    Same call as arcface_torch's `backbones.get_model`; extra keyword arguments it passes to
    some networks (none used here) are accepted and ignored so its scripts work unchanged.
    """
    if not is_model(name):
        raise ValueError(f"unknown network {name!r}; known networks: {', '.join(list_models())}")
    upper = parse_upper_name(name)
    if upper is not None:  # <network>+upper<R>: the network seeing only rows 0..R-1 (upper_face.py)
        return add_lower_face_cut(get_model(upper[0], dropout=dropout, fp16=fp16, num_features=num_features,
                                            **kwargs), upper[1])
    builder = _BUILDERS.get(name, build_split_g2d)
    return builder(name, dropout=dropout, num_features=num_features, fp16=fp16)

"""EMBEDDER_TYPES: every type of face model a spec can name -- config.teacher, a model of
`g2d-eval compare/verify/pairs/ijb`, config.eval.models, `g2d-cache build`.

The key is the spec key that selects the type (dict(onnx="m.onnx") is an "onnx"); the class
declares the rest of its spec (FaceEmbedder's class side, embedders/base.py). A string spec goes to
the first type, in this order, whose `parse_string` accepts it. Adding a type: one module with its
class plus one line here (docs/architecture.md, "Add a teacher type").
"""
from ..teachers.cache import TeacherCache
from .dlib_resnet import DlibResNetEmbedder
from .onnx_model import OnnxEmbedder
from .run_stage import StageNetwork
from .torch_network import TorchNetwork

EMBEDDER_TYPES = {
    "cache": TeacherCache,     # a teacher cache directory (teachers/cache.py; training only)
    "onnx": OnnxEmbedder,
    "dlib": DlibResNetEmbedder,     # dlib's ResNet (PyTorch; dlib itself with engine="dlib-bin")
    "stage": StageNetwork,     # training only
    "network": TorchNetwork,   # last: its strings are NETWORK[:CHECKPOINT] with a get_model network
}

"""G2D masked-face recognition as a plugin for insightface's arcface_torch."""
from .version import __version__

__all__ = ["__version__", "FaceRecognizer", "get_model", "list_models"]


def __getattr__(name):
    # Lazy so that `import insightface_g2d` stays cheap for data-only tools.
    if name in ("get_model", "list_models"):
        from .backbones import registry

        return getattr(registry, name)
    if name == "FaceRecognizer":
        from .recognition.recognizer import FaceRecognizer

        return FaceRecognizer
    raise AttributeError(name)

"""Backbones: G2D and the arcface_torch-compatible teacher networks.

The names below load on first use, so that a torch-free module of this package (``dlib_format``:
dlib's file format, read by the front end's HOG check) imports without PyTorch."""
import importlib

_EXPORTS = {
    "load_backbone_weights": "checkpoint",
    "G2DBackbone": "g2d", "InpaintingDecoder": "g2d", "PatchDiscriminator": "g2d", "build_discriminator": "g2d",
    "build_inpainter": "g2d",
    "get_model": "registry", "list_models": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

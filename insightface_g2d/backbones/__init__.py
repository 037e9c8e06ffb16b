"""Backbones: G2D and the arcface_torch-compatible teacher networks."""
from .checkpoint import load_backbone_weights
from .g2d import G2DBackbone, InpaintingDecoder, PatchDiscriminator, build_discriminator, build_inpainter
from .registry import get_model, list_models

__all__ = [
    "G2DBackbone", "InpaintingDecoder", "PatchDiscriminator", "build_discriminator", "build_inpainter",
    "get_model", "list_models", "load_backbone_weights",
]

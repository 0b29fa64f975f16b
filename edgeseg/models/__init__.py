"""Architectures (a registry of families built from JSON-able specs) and their model files."""

from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
from edgeseg.models.registry import ModelSpec, build_model
from edgeseg.models.unet import UNet, UNetConfig

__all__ = [
    "Checkpoint",
    "ModelSpec",
    "Normalization",
    "UNet",
    "UNetConfig",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]

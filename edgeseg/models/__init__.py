"""The network and its checkpoints."""

from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
from edgeseg.models.unet import UNet, UNetConfig

__all__ = ["Checkpoint", "Normalization", "UNet", "UNetConfig", "load_checkpoint", "save_checkpoint"]

"""The torch device a command runs on: one rule for training, evaluation and the torch backend."""

from __future__ import annotations

import torch

from edgeseg.errors import InputError

__all__ = ["resolve_device"]


def resolve_device(device: str) -> torch.device:
    """`auto` (CUDA when present, else CPU), `cpu` or `cuda[:N]`; a CUDA device that is not there is
    an InputError naming `--device cpu`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} was asked for but no CUDA device is available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown --device '{device}'; use auto, cpu or cuda[:N]") from None

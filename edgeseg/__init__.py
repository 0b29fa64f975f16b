"""edgeseg: train a U-Net, export it to ONNX Runtime / OpenVINO / TensorRT, run it anywhere.

Importing the package is cheap: torch and the runtimes load only when a name that needs them is
first used (``edgeseg.UNet``, ``edgeseg.train``, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgeseg._version import __version__

# No telemetry from the runtimes edgeseg loads (edgeseg._offline): switches they read when they load.
importlib.import_module("edgeseg._offline").set_env_switches()

# name -> module that defines it; resolved on first attribute access (PEP 562).
_LAZY = {
    "UNet": "edgeseg.models.unet",
    "UNetConfig": "edgeseg.models.unet",
    "Checkpoint": "edgeseg.models.checkpoint",
    "Normalization": "edgeseg.models.checkpoint",
    "load_checkpoint": "edgeseg.models.checkpoint",
    "save_checkpoint": "edgeseg.models.checkpoint",
    "ModelSpec": "edgeseg.models.registry",
    "build_model": "edgeseg.models.registry",
    "import_model": "edgeseg.models.imported",
    "export": "edgeseg.exporters.api",
    "ExportConfig": "edgeseg.exporters",
    "train": "edgeseg.training.loop",
    "TrainConfig": "edgeseg.training.setup",
    "TrainResult": "edgeseg.training.setup",
    "evaluate_checkpoint": "edgeseg.evaluation.evaluate",
    "benchmark": "edgeseg.bench.run",
    "BenchmarkConfig": "edgeseg.bench.run",
    "Segmenter": "edgeseg.segmenter",
    "SegResult": "edgeseg.segmenter",
    "ConfusionMatrix": "edgeseg.evaluation.metrics",
    "SegMetrics": "edgeseg.evaluation.metrics",
    "FolderDataset": "edgeseg.data",
    "SyntheticDataset": "edgeseg.data",
}

__all__ = [
    "BenchmarkConfig",
    "Checkpoint",
    "ConfusionMatrix",
    "ExportConfig",
    "FolderDataset",
    "ModelSpec",
    "Normalization",
    "SegMetrics",
    "SegResult",
    "Segmenter",
    "SyntheticDataset",
    "TrainConfig",
    "TrainResult",
    "UNet",
    "UNetConfig",
    "__version__",
    "benchmark",
    "build_model",
    "evaluate_checkpoint",
    "export",
    "import_model",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]

if TYPE_CHECKING:
    from edgeseg.bench.run import BenchmarkConfig, benchmark
    from edgeseg.data import FolderDataset, SyntheticDataset
    from edgeseg.evaluation.evaluate import evaluate_checkpoint
    from edgeseg.evaluation.metrics import ConfusionMatrix, SegMetrics
    from edgeseg.exporters import ExportConfig
    from edgeseg.exporters.api import export
    from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
    from edgeseg.models.imported import import_model
    from edgeseg.models.registry import ModelSpec, build_model
    from edgeseg.models.unet import UNet, UNetConfig
    from edgeseg.segmenter import Segmenter, SegResult
    from edgeseg.training.loop import train
    from edgeseg.training.setup import TrainConfig, TrainResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

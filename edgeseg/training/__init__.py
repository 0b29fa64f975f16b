"""Training: the loop (loop.py), what a run is set up from (setup.py), losses, DDP helpers and the
figures written beside a run.

The package is ``edgeseg.training`` rather than ``edgeseg.train`` so that importing it never shadows
the public function ``edgeseg.train``.
"""

from edgeseg.models.device import resolve_device
from edgeseg.training.loop import TrainingDiverged, cosine_with_warmup, train, train_step
from edgeseg.training.setup import (
    SYNTHETIC_SIZE,
    TrainConfig,
    TrainResult,
    auto_batch_size,
    build_datasets,
    check_img_size,
    model_spec,
    new_model,
    next_free_dir,
    prepare_run_dir,
)

__all__ = [
    "SYNTHETIC_SIZE",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "auto_batch_size",
    "build_datasets",
    "check_img_size",
    "cosine_with_warmup",
    "model_spec",
    "new_model",
    "next_free_dir",
    "prepare_run_dir",
    "resolve_device",
    "train",
    "train_step",
]

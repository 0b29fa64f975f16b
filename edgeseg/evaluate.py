"""Evaluation of a model on a dataset: the one code path behind training's validation and
``edgeseg eval``, so both report the same numbers on the same data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from edgeseg.metrics import ConfusionMatrix, SegMetrics
from edgeseg.models.checkpoint import Checkpoint, Normalization


def to_input(images: torch.Tensor, norm: Normalization, device: torch.device | str) -> torch.Tensor:
    """uint8 NHWC batch -> normalised float32 NCHW on `device` (done on the device: cheap on GPUs)."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(norm.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(norm.std, device=x.device).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std)


@torch.no_grad()
def confusion_on(
    model: torch.nn.Module,
    dataset: Dataset[Any],
    *,
    norm: Normalization,
    num_classes: int,
    ignore_index: int | None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    indices: Sequence[int] | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of `model`'s argmax masks against the dataset's masks, at the model's input
    size (the dataset resizes both to it)."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    data = Subset(dataset, list(indices)) if indices is not None else dataset
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
    for images, masks in loader:
        pred = model(to_input(images, norm, device)).argmax(dim=1)
        cm.update(pred.cpu().numpy(), masks.numpy())
    model.train(was_training)
    return cm


@dataclass
class EvalReport:
    metrics: SegMetrics
    class_names: list[str]
    images: int
    img_size: tuple[int, int]
    data: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "images": self.images,
            "img_size": list(self.img_size),
            **self.metrics.to_dict(self.class_names),
        }


def evaluate_checkpoint(
    ckpt: Checkpoint,
    data: str | Path,
    *,
    ignore_index: int | None = None,
    batch_size: int = 8,
    device: str = "auto",
) -> EvalReport:
    """Score a checkpoint on a dataset folder, with the same preprocessing as training's validation."""
    from edgeseg.data import FolderDataset
    from edgeseg.training import resolve_device

    dev = resolve_device(device)
    ignore = ckpt.ignore_index if ignore_index is None else ignore_index
    ds = FolderDataset(
        data,
        img_size=ckpt.img_size,
        num_classes=ckpt.model_config.classes,
        ignore_index=ignore,
        channels=ckpt.model_config.in_channels,
    )
    model = ckpt.build_model(dev)
    cm = confusion_on(
        model,
        ds,
        norm=ckpt.normalization,
        num_classes=ckpt.model_config.classes,
        ignore_index=ignore,
        batch_size=batch_size,
        device=dev,
    )
    return EvalReport(cm.compute(), list(ckpt.class_names), len(ds), ckpt.img_size, str(data))


def predict_masks(
    model: torch.nn.Module, images: np.ndarray, norm: Normalization, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Argmax masks (N, H, W) for a uint8 NHWC batch already at the model's input size."""
    with torch.no_grad():
        return model(to_input(torch.from_numpy(images), norm, device)).argmax(1).cpu().numpy()

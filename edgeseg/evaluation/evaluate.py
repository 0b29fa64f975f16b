"""Evaluation of a model on a dataset: the one code path behind training's validation and
``edgeseg eval``, so both report the same numbers on the same data.

torch is imported inside the checkpoint functions only: scoring an exported bundle never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._evidence import ClassSet, labelled_hint
from edgeseg._guards import recorded_path
from edgeseg._torch_resize import tensor_of
from edgeseg.data import FolderDataset
from edgeseg.evaluation.metrics import ConfusionMatrix, SegMetrics
from edgeseg.segmenter import Segmenter

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from edgeseg.data import Skipped
    from edgeseg.models.checkpoint import Checkpoint, Normalization


def to_input(images: torch.Tensor, norm: Normalization, device: torch.device | str) -> torch.Tensor:
    """uint8 NHWC batch -> normalised float32 NCHW on `device` (done on the device: cheap on GPUs)."""
    import torch

    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(norm.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(norm.std, device=x.device).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std)


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
    import torch
    from torch.utils.data import DataLoader, Subset

    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    data = Subset(dataset, list(indices)) if indices is not None else dataset
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
    with torch.no_grad():
        for images, masks in loader:
            pred = model(to_input(images, norm, device)).argmax(dim=1)
            cm.update(pred.cpu().numpy(), masks.numpy())
    model.train(was_training)
    return cm


@dataclass
class EvalReport:
    """Scores of a model on a dataset folder. Per-class scores may be NaN (a class absent from truth
    and prediction); the totals are finite and stand on the minimum of evidence (`scores`)."""

    metrics: SegMetrics
    class_names: list[str]
    images: int
    img_size: tuple[int, int]
    data: str
    # Image/mask pairs left out as unreadable (the batch rule: scored on the rest, each named once).
    skipped: list[Skipped] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "images": self.images,
            "img_size": list(self.img_size),
            **self.metrics.to_dict(self.class_names),
            "skipped": [s.to_dict() for s in self.skipped],
        }


def scores(cm: ConfusionMatrix, ds: Any, data: str | Path) -> SegMetrics:
    """The confusion matrix's figures, refused without the minimum of evidence (edgeseg._evidence):
    labelled pixels at the model's size and in `ds`'s own mask files (`FolderDataset.labelled_pixels`)."""
    return cm.checked(
        f"on --data '{data}'",
        "labelled pixels",
        data_pixels=getattr(ds, "labelled_pixels", None),
        hint=labelled_hint(cm.ignore_index),
    )


def model_classes(label: str, names: Sequence[str]) -> ClassSet:
    """A model's classes as data must agree with them (edgeseg._evidence.require_same_classes)."""
    return ClassSet.of(f"the model '{label}'", names)


def evaluate_checkpoint(
    ckpt: Checkpoint,
    data: str | Path,
    *,
    ignore_index: int | None = None,
    batch_size: int = 8,
    device: str = "auto",
) -> EvalReport:
    """Score a checkpoint on a dataset folder, with the same preprocessing as training's validation.

    An unreadable image or mask is left out with a `SkippedFileWarning` naming it; the report lists it
    in `skipped` (InputError only when nothing could be read)."""
    from edgeseg.models.device import resolve_device

    dev = resolve_device(device)
    ignore = ckpt.ignore_index if ignore_index is None else ignore_index
    label = str(ckpt.path) if ckpt.path is not None else "checkpoint"
    ds = FolderDataset(
        data,
        img_size=ckpt.img_size,
        num_classes=model_classes(label, ckpt.class_names),
        ignore_index=ignore,
        channels=ckpt.model_config.in_channels,
        skip_unreadable=True,
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
    metrics = scores(cm, ds, data)
    return EvalReport(
        metrics, list(ckpt.class_names), len(ds), ckpt.img_size, recorded_path(data), ds.skipped
    )


def evaluate_artifact(
    path: str | Path,
    data: str | Path,
    *,
    backend: str = "auto",
    device: str | None = None,
    ignore_index: int | None = None,
    batch_size: int = 8,
    **segmenter_options: Any,
) -> EvalReport:
    """Score an exported model (bundle folder, .onnx or .xml) on a dataset folder through `Segmenter`,
    at the model's input size like training's validation, so the figures compare with the checkpoint's.

    `segmenter_options` go to `Segmenter`: for an ONNX file from elsewhere (no edgeseg metadata) its
    mean, std, color_order and classes or class_names, and img_size when its input is dynamic.
    Unreadable files are left out as by `evaluate_checkpoint`."""

    with Segmenter(path, backend=backend, device=device, input_format="rgb", **segmenter_options) as seg:
        pre = seg.preprocessing
        if ignore_index is None and seg.manifest is not None:
            ignore_index = seg.manifest.ignore_index
        ds = FolderDataset(
            data,
            img_size=(pre.width, pre.height),
            num_classes=model_classes(str(path), pre.class_names),
            ignore_index=ignore_index,
            channels=pre.channels,
            skip_unreadable=True,
        )
        cm = ConfusionMatrix(len(pre.class_names), ignore_index)
        for start in range(0, len(ds), batch_size):
            items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
            for result, (_, mask) in zip(seg.predict_batch([img for img, _ in items]), items, strict=True):
                cm.update(result.mask, mask)
    return EvalReport(
        scores(cm, ds, data),
        list(pre.class_names),
        len(ds),
        (pre.width, pre.height),
        recorded_path(data),
        ds.skipped,
    )


def predict_masks(
    model: torch.nn.Module, images: np.ndarray, norm: Normalization, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Argmax masks (N, H, W) for a uint8 NHWC batch already at the model's input size."""
    import torch

    with torch.no_grad():
        return model(to_input(tensor_of(images), norm, device)).argmax(1).cpu().numpy()

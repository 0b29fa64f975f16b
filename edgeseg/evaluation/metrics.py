"""Segmentation metrics from one confusion matrix: IoU, Dice and pixel accuracy.

NumPy only, so training, `edgeseg eval` and every runtime backend report the same numbers from the
same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeseg._evidence import Evidence, require_evidence


@dataclass
class SegMetrics:
    """Scores of a set of predictions. Per-class values are NaN for classes absent from both the
    ground truth and the predictions, and for a class whose id is the ignore index (a model's "void"
    class: its truth is never counted); the means skip them."""

    miou: float
    dice: float
    pixel_accuracy: float
    iou_per_class: list[float] = field(default_factory=list)
    dice_per_class: list[float] = field(default_factory=list)
    pixels: int = 0

    def to_dict(self, class_names: list[str] | None = None) -> dict[str, object]:
        names = class_names or [str(i) for i in range(len(self.iou_per_class))]
        return {
            "miou": self.miou,
            "dice": self.dice,
            "pixel_accuracy": self.pixel_accuracy,
            "pixels": self.pixels,
            "iou_per_class": {n: _json_float(v) for n, v in zip(names, self.iou_per_class, strict=True)},
            "dice_per_class": {n: _json_float(v) for n, v in zip(names, self.dice_per_class, strict=True)},
        }


def _json_float(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


class ConfusionMatrix:
    """Accumulates a (num_classes x num_classes) matrix; rows are ground truth, columns predictions.

    Pixels whose ground truth equals `ignore_index` are skipped. `images` counts the images (the
    leading axes of the arrays given to `update`) with at least one counted pixel: with `pixels`
    (the matrix's sum), what a figure stands on (`evidence`, `checked`).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.images = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add predictions and ground truth of the same shape (class ids)."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground truth shape {target.shape}")
        images = int(np.prod(target.shape[:-2])) if target.ndim > 2 else 1
        pred = pred.reshape(-1).astype(np.int64, copy=False)
        target = target.reshape(-1).astype(np.int64, copy=False)
        keep = (target >= 0) & (target < self.num_classes)
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        n = self.num_classes
        self.matrix += np.bincount(target[keep] * n + pred[keep], minlength=n * n).reshape(n, n)
        self.images += int(keep.reshape(max(images, 1), -1).any(axis=1).sum()) if keep.size else 0

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        self.matrix += other.matrix
        self.images += other.images
        return self

    @property
    def pixels(self) -> int:
        """Pixels counted so far (labelled ones, for a matrix against ground truth)."""
        return int(self.matrix.sum())

    def evidence(self, what: str, *, data_pixels: int | None = None, hint: str = "") -> Evidence:
        """What this matrix's figures stand on (edgeseg._evidence.Evidence)."""
        return Evidence(what, self.pixels, self.images, data_pixels, hint)

    def checked(
        self, figure: str, what: str, *, data_pixels: int | None = None, hint: str = ""
    ) -> SegMetrics:
        """`compute()`, refused (InputError naming what is missing) unless the matrix holds the
        minimum of evidence (edgeseg._evidence) and every total figure is finite. `figure` says
        where the figures are from ("on --data 'val'", "vs PyTorch"); `what` the pixels counted
        ("labelled pixels")."""
        metrics = self.compute()
        evidence = self.evidence(what, data_pixels=data_pixels, hint=hint)
        for name, label in (("miou", "mIoU"), ("dice", "Dice"), ("pixel_accuracy", "pixel accuracy")):
            require_evidence(f"{label} {figure}", getattr(metrics, name), evidence)
        return metrics

    def compute(self) -> SegMetrics:
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        fp = m.sum(axis=0) - tp
        fn = m.sum(axis=1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / (tp + fp + fn)
            dice = 2 * tp / (2 * tp + fp + fn)
        total = m.sum()
        ignored = self.ignore_index
        if ignored is not None and 0 <= ignored < self.num_classes:
            # A model's own "void" class that the labels mark as unlabelled: its truth is never
            # counted, so its IoU would be 0 for every prediction of it; it is not scored.
            iou[ignored] = dice[ignored] = np.nan
        present = ~np.isnan(iou)
        return SegMetrics(
            miou=float(iou[present].mean()) if present.any() else float("nan"),
            dice=float(dice[present].mean()) if present.any() else float("nan"),
            pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
            iou_per_class=[float(v) for v in iou],
            dice_per_class=[float(v) for v in dice],
            pixels=int(total),
        )


def mask_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where two masks hold the same class (no minimum of evidence: a reported
    agreement goes through `ConfusionMatrix.checked`, whose pixel accuracy is the same figure)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    return float((a == b).mean()) if a.size else float("nan")

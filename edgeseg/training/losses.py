"""Training loss: cross-entropy plus soft Dice, both skipping the ignore label; class weights for
imbalanced data (median frequency balancing)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import InputError

__all__ = ["DiceCELoss", "class_weights_from_spec", "median_frequency_weights"]


class DiceCELoss(nn.Module):
    """``ce_weight * CE + dice_weight * (1 - soft Dice)``.

    Dice is computed over the whole batch per class and averaged over the classes present in the
    batch's ground truth: a rare class present in a batch counts as much as the background (what
    imbalanced data needs), and a class absent from a batch neither rewards nor punishes it (the CE
    term still penalises predicting it). With ``dice_classes="foreground"`` class 0 is left out of
    that average (the usual binary-segmentation Dice, on the foreground only). With
    ``"all_foreground"`` (MONAI's ``include_background=False``, as the tutorials write it) every
    class but 0 counts, absent ones too: an absent class's Dice is 1 / (1 + its predicted mass), so
    predicting it where it is not costs loss. Pixels labelled
    `ignore_index` count in neither term.
    `class_weight` (one value per class) weights the cross-entropy term.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        eps: float = 1.0,
        class_weight: torch.Tensor | None = None,
        dice_classes: str = "present",
    ) -> None:
        super().__init__()
        if dice_classes not in ("present", "foreground", "all_foreground"):
            raise ValueError(
                f"dice_classes must be present, foreground or all_foreground; got {dice_classes!r}"
            )
        self.dice_classes = dice_classes
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.eps = eps
        if class_weight is not None and class_weight.shape != (num_classes,):
            raise ValueError(
                f"class_weight needs {num_classes} values, got shape {tuple(class_weight.shape)}"
            )
        self.register_buffer("class_weight", class_weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ignore = -100 if self.ignore_index is None else self.ignore_index
        weight = None if self.class_weight is None else self.class_weight.to(logits.dtype)
        ce = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore)
        if self.dice_weight == 0:
            return self.ce_weight * ce
        valid = target != ignore
        probs = logits.float().softmax(dim=1) * valid.unsqueeze(1)
        onehot = F.one_hot(torch.where(valid, target, 0), self.num_classes).permute(0, 3, 1, 2)
        onehot = onehot * valid.unsqueeze(1)
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        card = probs.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + self.eps) / (card + self.eps)
        present = onehot.sum(dims) > 0
        if self.dice_classes == "all_foreground":
            present[:] = True
        if self.dice_classes != "present":
            present[0] = False
        dice_loss = (1 - dice)[present].mean() if present.any() else dice.sum() * 0
        return self.ce_weight * ce + self.dice_weight * dice_loss


def median_frequency_weights(
    masks: Iterable[np.ndarray], num_classes: int, ignore_index: int | None = None
) -> list[float]:
    """Median frequency balancing (Eigen & Fergus, 2015): freq(c) = pixels of class c / pixels of
    the masks that contain c; weight(c) = median over the present classes of freq / freq(c).
    Pixels labelled `ignore_index` count nowhere. A class absent from every mask gets weight 1
    (it has no pixels to weight)."""
    pixels = np.zeros(num_classes, np.float64)
    in_masks_with = np.zeros(num_classes, np.float64)
    for mask in masks:
        ids = mask.ravel()
        if ignore_index is not None:
            ids = ids[ids != ignore_index]
        counts = np.bincount(ids, minlength=num_classes)[:num_classes].astype(np.float64)
        pixels += counts
        in_masks_with += (counts > 0) * ids.size
    present = pixels > 0
    if not present.any():
        raise InputError("the training masks hold no labelled pixels; cannot compute class weights")
    freq = np.where(present, pixels / np.maximum(in_masks_with, 1), np.nan)
    median = float(np.median(freq[present]))
    return [float(median / f) if p else 1.0 for f, p in zip(freq, present, strict=True)]


def class_weights_from_spec(spec: str, num_classes: int) -> list[float] | None:
    """`--class-weights` as given: None for 'none', None-free list for 'w1,w2,...' (checked);
    'auto', 'sqrt' and 'sqrt-if-imbalanced' are resolved by the caller from the data (they need the masks)."""
    if spec == "none":
        return None
    try:
        weights = [float(w) for w in spec.split(",")]
    except ValueError:
        raise InputError(
            f"--class-weights must be none, auto, sqrt, sqrt-if-imbalanced or {num_classes} "
            f"comma-separated numbers; got '{spec}'"
        ) from None
    if len(weights) != num_classes:
        raise InputError(
            f"--class-weights lists {len(weights)} values but the data has {num_classes} classes; "
            f"give one weight per class"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise InputError(f"--class-weights must be finite, non-negative and not all 0; got '{spec}'")
    return weights

"""Training loss: cross-entropy plus soft Dice, both skipping the ignore label."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiceCELoss(nn.Module):
    """``ce_weight * CE + dice_weight * (1 - soft Dice)``.

    Dice is averaged over the classes present in the batch's ground truth, so a class absent from a
    batch neither rewards nor punishes it; pixels labelled `ignore_index` count in neither term.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        eps: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.eps = eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ignore = -100 if self.ignore_index is None else self.ignore_index
        ce = F.cross_entropy(logits, target, ignore_index=ignore)
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
        dice_loss = (1 - dice)[present].mean() if present.any() else dice.sum() * 0
        return self.ce_weight * ce + self.dice_weight * dice_loss

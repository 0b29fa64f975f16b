"""Figures written next to a training run: learning curves and image | truth | prediction samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg._io import atomic_path
from edgeseg._plot import pyplot
from edgeseg.overlay import colorize


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Train loss and val mIoU / Dice / pixel accuracy per epoch."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set(title="train loss (CE + Dice)", xlabel="epoch")
    for key, label in (("miou", "val mIoU"), ("dice", "val Dice"), ("pixel_accuracy", "val pixel acc")):
        ax2.plot(epochs, [h[key] for h in history], marker="o", label=label)
    ax2.set(title="validation", xlabel="epoch", ylim=(0, 1))
    ax2.legend(loc="lower right")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_samples(ckpt: Any, dataset: Any, path: Path, *, count: int = 4, device: Any = "cpu") -> None:
    """Rows of image | ground truth | prediction for the first `count` images of `dataset`."""
    from edgeseg.evaluation.evaluate import predict_masks

    plt = pyplot()
    n = min(count, len(dataset))
    model = ckpt.build_model(device)
    k = ckpt.model_config.classes
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for row in range(n):
        image, mask = dataset[row]
        pred = predict_masks(model, image[None], ckpt.normalization, device)[0]
        shown = image[..., 0] if image.shape[-1] == 1 else image
        for ax, img, title in zip(
            axes[row],
            (shown, colorize(mask, k, ckpt.ignore_index), colorize(pred, k)),
            ("image", "ground truth", "prediction"),
            strict=True,
        ):
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(title)
            ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)

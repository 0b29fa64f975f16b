"""Figures written next to a training run: learning curves and image | truth | prediction samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg._io import atomic_path
from edgeseg._plot import pyplot
from edgeseg.overlay import colorize


def plot_curves(
    history: list[dict[str, Any]],
    path: Path,
    *,
    best_epoch: int | None = None,
    best: dict[str, Any] | None = None,
) -> None:
    """Train loss and val mIoU / Dice / pixel accuracy per epoch; with `best` (the best epoch's
    SegMetrics.to_dict) a third panel of its per-class IoU."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    per_class = (best or {}).get("iou_per_class") or {}
    fig, axes = plt.subplots(1, 3 if per_class else 2, figsize=(15 if per_class else 10, 4))
    ax1, ax2 = axes[0], axes[1]
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set(title="train loss (CE + Dice)", xlabel="epoch")
    for key, label in (("miou", "val mIoU"), ("dice", "val Dice"), ("pixel_accuracy", "val pixel acc")):
        ax2.plot(epochs, [h[key] for h in history], marker="o", label=label)
    ax2.set(title="validation", xlabel="epoch", ylim=(0, 1))
    if best_epoch:
        ax2.axvline(best_epoch, color="gray", linestyle="--", linewidth=1, label=f"best (epoch {best_epoch})")
    ax2.legend(loc="lower right")
    if per_class:
        names = list(per_class)
        values = [per_class[n] if per_class[n] is not None else 0.0 for n in names]
        axes[2].barh(names, values)
        axes[2].invert_yaxis()
        axes[2].set(title=f"val IoU per class, epoch {best_epoch}", xlim=(0, 1))
        for y, (n, v) in enumerate(zip(names, values, strict=True)):
            axes[2].text(min(v, 0.85) + 0.01, y, "n/a" if per_class[n] is None else f"{v:.2f}", va="center")
    for ax in axes:
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

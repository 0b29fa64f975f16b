"""Figures written next to a training run: learning curves and image | truth | prediction samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeseg._io import atomic_path


def class_colors(n: int) -> np.ndarray:
    """A fixed, distinguishable RGB colour per class id (uint8, shape (n, 3)); class 0 is black."""
    base = np.array(
        [
            [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
            [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
            [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
        ],
        dtype=np.uint8,
    )  # fmt: skip
    if n <= len(base):
        return base[:n]
    rng = np.random.default_rng(0)
    return np.concatenate([base, rng.integers(0, 256, (n - len(base), 3), dtype=np.uint8)])


def colorize(mask: np.ndarray, n: int, ignore_index: int | None = None) -> np.ndarray:
    """HxW class ids -> HxWx3 colours; ignored or out-of-range ids are drawn white."""
    colors = np.concatenate([class_colors(n), np.full((1, 3), 255, np.uint8)])
    ids = np.where((mask >= 0) & (mask < n), mask, n)
    return colors[ids]


def _figure():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, works on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Train loss and val mIoU / Dice / pixel accuracy per epoch."""
    plt = _figure()
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
    from edgeseg.evaluate import predict_masks

    plt = _figure()
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

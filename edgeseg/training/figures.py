"""Figures written next to a training run: learning curves and image | truth | prediction samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg._io import atomic_path
from edgeseg._plot import pyplot
from edgeseg.evaluation.evaluate import predict_masks
from edgeseg.legend import legend_entries
from edgeseg.overlay import colorize


def plot_curves(
    history: list[dict[str, Any]],
    path: Path,
    *,
    best_epoch: int | None = None,
    best: dict[str, Any] | None = None,
) -> None:
    """Write `curves_figure` to `path` (PNG)."""
    _save(curves_figure(history, best_epoch=best_epoch, best=best), path, dpi=100)


def plot_samples(ckpt: Any, dataset: Any, path: Path, *, count: int = 4, device: Any = "cpu") -> None:
    """Write `samples_figure` to `path` (PNG)."""
    _save(samples_figure(ckpt, dataset, count=count, device=device), path, dpi=80)


def _save(fig: Any, path: Path, dpi: int) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)


def curves_figure(
    history: list[dict[str, Any]], *, best_epoch: int | None = None, best: dict[str, Any] | None = None
) -> Any:
    """A matplotlib figure: train loss and val mIoU / Dice / pixel accuracy per epoch; with `best`
    (the best epoch's SegMetrics.to_dict) a third panel of its per-class IoU."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    per_class = (best or {}).get("iou_per_class") or {}
    fig, axes = plt.subplots(
        1, 3 if per_class else 2, figsize=(15 if per_class else 10, 4.6), layout="constrained"
    )
    ax1, ax2 = axes[0], axes[1]
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set(title="train loss (CE + Dice)", xlabel="epoch")
    for key, label in (("miou", "val mIoU"), ("dice", "val Dice"), ("pixel_accuracy", "val pixel acc")):
        ax2.plot(epochs, [h[key] for h in history], marker="o", label=label)
    ax2.set(title="validation", xlabel="epoch", ylim=(0, 1))
    if best_epoch:
        ax2.axvline(best_epoch, color="gray", linestyle="--", linewidth=1, label=f"best (epoch {best_epoch})")
    # Below the panel, not inside it: inside, the legend hid the last epochs' points.
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize=8, frameon=False)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs, no "1.5"
    if per_class:
        names = list(per_class)
        values = [per_class[n] if per_class[n] is not None else 0.0 for n in names]
        axes[2].barh(names, values)
        axes[2].invert_yaxis()
        axes[2].set(title=f"val IoU per class, epoch {best_epoch}", xlim=(0, 1))
        for y, (n, v) in enumerate(zip(names, values, strict=True)):
            text = "n/a" if per_class[n] is None else f"{v:.2f}"
            if v > 0.85:  # inside the bar's end, in white: beside it the figure would leave the panel
                axes[2].text(v - 0.01, y, text, va="center", ha="right", color="white")
            else:
                axes[2].text(v + 0.01, y, text, va="center")
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def samples_figure(ckpt: Any, dataset: Any, *, count: int = 4, device: Any = "cpu") -> Any:
    """A matplotlib figure: rows of image | ground truth | prediction for the first `count` images of
    `dataset`, with the class key (names and colours; white: ignored pixels) under them."""
    from matplotlib.patches import Patch

    plt = pyplot()
    n = min(count, len(dataset))
    model = ckpt.build_model(device)
    k = ckpt.model_config.classes
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n + 0.8), squeeze=False, layout="constrained")
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
    ignored = "ignored / unlabelled" if ckpt.ignore_index is not None else None
    entries = legend_entries(ckpt.class_names, ignored=ignored)  # the colours colorize draws
    handles = [Patch(facecolor=_mpl(e.colour), edgecolor="0.4", label=e.name) for e in entries]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=11, frameon=False
    )
    return fig


def _mpl(colour: tuple[int, int, int] | None) -> tuple[float, float, float] | str:
    return "none" if colour is None else (colour[0] / 255, colour[1] / 255, colour[2] / 255)

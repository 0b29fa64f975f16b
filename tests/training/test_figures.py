"""The figures beside a training run read without the code: whole epochs, legends that hide no point,
and the class key under the samples."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edgeseg.training.figures import curves_figure, plot_samples, samples_figure


def _history(epochs: int) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            "miou": 0.5 + 0.1 * e,
            "dice": 0.6 + 0.08 * e,
            "pixel_accuracy": 0.95,
        }
        for e in range(1, epochs + 1)
    ]


@pytest.mark.parametrize("epochs", [1, 2, 3, 7])
def test_curves_have_whole_epochs_and_the_legend_outside_the_panel(epochs: int):
    import matplotlib.pyplot as plt

    fig = curves_figure(_history(epochs), best_epoch=epochs, best={"iou_per_class": {"a": 0.9, "b": None}})
    try:
        fig.canvas.draw()
        loss, val = fig.axes[0], fig.axes[1]
        for ax in (loss, val):
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
        legend = val.get_legend()
        assert [t.get_text() for t in legend.get_texts()][:3] == ["val mIoU", "val Dice", "val pixel acc"]
        # Below the panel: the last epochs' points (top right) stay visible.
        assert legend.get_window_extent().y1 <= val.get_window_extent().y0
    finally:
        plt.close(fig)


@pytest.mark.parametrize("ignore_index", [None, 255])
def test_samples_carry_the_class_key(tiny_ckpt: Path, ignore_index: int | None, tmp_path: Path):
    import matplotlib.pyplot as plt

    from edgeseg.models.checkpoint import load_checkpoint

    ckpt = dataclasses.replace(load_checkpoint(tiny_ckpt), ignore_index=ignore_index)
    rng = np.random.default_rng(0)
    data = [
        (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), rng.integers(0, 4, (48, 64)).astype(np.uint8))
    ]
    fig = samples_figure(ckpt, data)
    try:
        (key,) = fig.legends
        names = [t.get_text() for t in key.get_texts()]
        assert names[:4] == ckpt.class_names == ["c0", "c1", "c2", "c3"]
        assert names[4:] == ([] if ignore_index is None else ["ignored / unlabelled"])
        colours = [tuple(round(v * 255) for v in h.get_facecolor()[:3]) for h in key.legend_handles]
        from edgeseg.overlay import class_colors

        assert colours[:4] == [tuple(int(v) for v in c) for c in class_colors(4)]  # colorize's colours
    finally:
        plt.close(fig)
    plot_samples(ckpt, data, tmp_path / "samples.png")
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"

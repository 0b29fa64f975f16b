"""Class colours and mask drawing: the one renderer behind `predict`'s overlays, the demo and the
training figures. numpy only."""

from __future__ import annotations

import numpy as np

__all__ = ["class_colors", "colorize"]


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

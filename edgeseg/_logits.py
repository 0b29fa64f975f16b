"""Logits that come out at a fraction of the input's size (SegFormer and most recent segmenters give
1/4), found and brought to the input's size in one way for every path: `import_model` and an ONNX
source add the step to the graph; `Segmenter` applies the same to a bare graph's output.

`logits_scale` decides whether an output is such a fraction; `upsample_logits` is bilinear
interpolation with half-pixel centres (PyTorch's `align_corners=False`, ONNX Resize's
`half_pixel`, what Hugging Face's post-processing does), in NumPy. NumPy only: no torch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_LOGITS_SCALE", "logits_scale", "upsample_logits"]

MAX_LOGITS_SCALE = 32  # logits at 1/2 .. 1/32 of the input; a smaller output is likely a mistake


def logits_scale(out_hw: tuple[int, int], in_hw: tuple[int, int]) -> int | None:
    """The factor f when logits of (height, width) `out_hw` are the input's `in_hw` divided by f on
    both sides (rounded down or up, as strided layers round), 1 when they are at the input's size,
    None otherwise."""
    if tuple(out_hw) == tuple(in_hw):
        return 1
    pairs = list(zip(out_hw, in_hw, strict=True))
    scales = range(2, MAX_LOGITS_SCALE + 1)
    exact = next((f for f in scales if all(o * f == i for o, i in pairs)), None)  # 128 of 512: 4, not 3
    return exact or next((f for f in scales if all(o in (i // f, -(-i // f)) for o, i in pairs)), None)


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, weight of the upper) of each output position: half-pixel
    centres, the source coordinate clamped to the input (as PyTorch and ONNX Runtime clamp it)."""
    x = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0.0, n_in - 1)
    lo = np.floor(x).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (x - lo).astype(np.float32)


def upsample_logits(logits: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """`logits` (..., K, h, w) bilinearly resized to (..., K, H, W) = `size_hw`, float32."""
    x = np.asarray(logits, dtype=np.float32)
    (y0, y1, wy), (x0, x1, wx) = (
        _axis_weights(x.shape[-2], size_hw[0]),
        _axis_weights(x.shape[-1], size_hw[1]),
    )
    rows = x[..., y0, :] * (1 - wy)[:, None] + x[..., y1, :] * wy[:, None]
    return np.ascontiguousarray(rows[..., x0] * (1 - wx) + rows[..., x1] * wx)

"""Pillow's bilinear resize of uint8 colour frames on PyTorch's vectorised kernel.

`torch.nn.functional.interpolate(mode="bilinear", antialias=True)` on uint8 channels-last input runs
AVX2 code written to reproduce Pillow's filter (antialiased when shrinking, weights normalised inside
the image): within 1 grey level of Pillow on 0.2-0.5 % of the pixels, 5-9x faster on a 1280x720
frame (`benchmarks/resize_speed.py`). It is the opt-in `resize_kernel="torch"` of `Segmenter`: a
deployed ONNX Runtime / OpenVINO process never imports torch unless asked (1.7 s and ~180 MiB).
"""

from __future__ import annotations

import numpy as np

__all__ = ["resize_rgb", "tensor_of"]


def tensor_of(arr: np.ndarray):  # type: ignore[no-untyped-def]  # -> torch.Tensor (torch is imported lazily)
    """`torch.from_numpy(arr)` for any array edgeseg is given: a read-only one (a frame from
    `np.broadcast_to`, a memory map, a camera buffer; `writeable=False`) is copied first, since
    torch warns that a tensor on read-only memory could be written through. Writable arrays are
    shared, not copied. The one way numpy arrays from outside become tensors."""
    import torch

    return torch.from_numpy(arr if arr.flags.writeable else np.array(arr))


def resize_rgb(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """A uint8 HxWx3 frame resized to (width, height) with Pillow's bilinear filter, on torch."""
    import torch
    import torch.nn.functional as F

    x = tensor_of(np.ascontiguousarray(img)).permute(2, 0, 1)[None]  # a channels-last view
    with torch.inference_mode():
        y = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return np.ascontiguousarray(y[0].permute(1, 2, 0).numpy())

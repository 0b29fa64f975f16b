"""Class colours and mask drawing: the one renderer behind `predict`'s overlays, the demo's live view
and the training figures. numpy only.

`Overlay` blends class colours over images: out = round((1 - alpha) * pixel + alpha * colour), class
0 (usually background) left as it is; ignored and unknown ids are white, as in `colorize`. It
precomputes the colour look-up table and, per colour channel, the blended value of every (class id,
pixel value) pair, so drawing a frame with numpy is three table look-ups. Where OpenCV is already
loaded (the demo), the same blend runs as OpenCV's LUT, addWeighted and copyTo, about 3.5x faster
than the tables at 640x480 (benchmarks/overlay_speed.py); the pixels are the same up to OpenCV's
rounding (at most 1 apart). Either way the buffers in between are kept from one frame to the next:
a frame allocates only its output.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["Overlay", "class_colors", "colorize"]

_WHITE = 255
_IDS = 256  # the look-up tables cover uint8 class ids; larger ids are drawn as unknown (white)


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
    """HxW class ids -> HxWx3 RGB colours; ignored (`ignore_index`) or out-of-range ids are drawn white."""
    colors = np.concatenate([class_colors(n), np.full((1, 3), _WHITE, np.uint8)])
    known = (mask >= 0) & (mask < n)
    if ignore_index is not None:
        known &= mask != ignore_index
    return colors[np.where(known, mask, n)]


class Overlay:
    """Draws class colours of masks over images of one channel order ("rgb" or "bgr").

    Args:
        num_classes: the model's classes.
        alpha: colour opacity over the image, 0..1.
        ignore_index: an id drawn white like ids beyond the classes (e.g. a dataset's unlabelled id).
        order: the channel order of the images and of the drawn colours.

    One Overlay serves one thread at a time (it keeps an index buffer between frames).
    """

    def __init__(
        self, num_classes: int, alpha: float = 0.5, *, ignore_index: int | None = None, order: str = "rgb"
    ) -> None:
        if order not in ("rgb", "bgr"):
            raise ValueError(f"order must be 'rgb' or 'bgr'; got {order!r}")
        k = min(num_classes, _IDS)
        colours = np.full((_IDS, 3), _WHITE, np.uint8)
        colours[:k] = class_colors(k)
        if ignore_index is not None and 0 <= ignore_index < _IDS:
            colours[ignore_index] = _WHITE
        self.colours = np.ascontiguousarray(colours[:, ::-1] if order == "bgr" else colours)  # id -> colour
        self.alpha = float(alpha)
        values = np.arange(256, dtype=np.float32)
        # blended[c, id, v]: channel c of a pixel of value v under class id; class 0 keeps the pixel.
        # float32 weights, as OpenCV's addWeighted takes them, so both paths round alike but for a
        # few pixels (OpenCV's vectorised sum may land 1 away).
        keep, add = np.float32(1.0 - self.alpha), np.float32(self.alpha)
        blended = keep * values[None, None, :] + add * self.colours.T[:, :, None].astype(np.float32)
        blended[:, 0, :] = values
        self._blended = np.rint(blended).clip(0, 255).astype(np.uint8).reshape(3, _IDS * 256)
        self._lut = self.colours.reshape(_IDS, 1, 3)  # OpenCV's LUT layout
        self._scratch: dict[str, np.ndarray] = {}

    def colour_mask(self, mask: np.ndarray) -> np.ndarray:
        """HxW class ids -> a new HxWx3 image of their colours."""
        return np.take(self.colours, _ids(mask), axis=0)

    def blend(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A new HxWx3 uint8 image: `image` (HxWx3 in this Overlay's order, or HxW / HxWx1 gray) with
        the colours of `mask` (HxW class ids of the same size) blended over it; `image` is unchanged."""
        if image.shape[:2] != mask.shape:
            raise ValueError(f"mask {mask.shape} and image {image.shape[:2]} differ in size")
        cv = sys.modules.get("cv2")  # only where the application loaded it: predict does not need it
        if cv is not None and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return self._blend_opencv(cv, image, _ids(mask))
        return self._blend_tables(image, _ids(mask))

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        buf = self._scratch.get(name)
        if buf is None or buf.shape != shape:
            buf = self._scratch[name] = np.empty(shape, dtype)
        return buf

    def _blend_tables(self, image: np.ndarray, ids: np.ndarray) -> np.ndarray:
        gray = image if image.ndim == 2 else image[:, :, 0] if image.shape[2] == 1 else None
        base, index = self._buffer("base", ids.shape, np.uint16), self._buffer("index", ids.shape, np.uint16)
        np.left_shift(ids, 8, out=base, dtype=np.uint16)  # id * 256: the row of the tables
        out = np.empty((*ids.shape, 3), np.uint8)
        for c in range(3):
            np.add(base, image[:, :, c] if gray is None else gray, out=index)
            np.take(self._blended[c], index, out=out[:, :, c], mode="clip")
        return out

    def _blend_opencv(self, cv: Any, image: np.ndarray, ids: np.ndarray) -> np.ndarray:
        shape3 = (*ids.shape, 3)
        ids3, colours = self._buffer("ids3", shape3, np.uint8), self._buffer("colours", shape3, np.uint8)
        blend, foreground = self._buffer("blend", shape3, np.uint8), self._buffer("fg", ids.shape, np.uint8)
        cv.merge([ids, ids, ids], dst=ids3)
        cv.LUT(ids3, self._lut, dst=colours)
        cv.addWeighted(image, 1.0 - self.alpha, colours, self.alpha, 0.0, dst=blend)
        np.greater(ids, 0, out=foreground.view(bool))
        out = image.copy()
        cv.copyTo(blend, foreground, out)
        return out


def _ids(mask: np.ndarray) -> np.ndarray:
    """Class ids as uint8 for the tables; negative ids and ids beyond 255 become 255 (white unless a
    model has 256 classes or more, whose ids beyond 255 the tables do not tell apart)."""
    if mask.dtype == np.uint8:
        return mask
    return np.where((mask >= 0) & (mask < _IDS), mask, _IDS - 1).astype(np.uint8)

"""Reading and resizing images and masks with Pillow and numpy only.

Everything here returns plain numpy arrays: images as uint8 HxWxC (C is 1 or 3, RGB order), masks as
HxW integer class ids. Sizes are (width, height) tuples, as Pillow and the CLI use them; arrays are
indexed [row, col]. Any file that cannot be decoded raises `InputError` naming the file, because a bad
file in a user's data folder is something the user fixes, not a crash.
"""

from __future__ import annotations

import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from edgeseg._cpu import usable_cores
from edgeseg._torch_resize import resize_rgb
from edgeseg.errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "LOSSY_MASK_SUFFIXES",
    "RESIZE_KERNELS",
    "UnreadableFile",
    "display_size",
    "parse_img_size",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
    "rgb_to_gray",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# Single-band modes whose samples do not fit uint8 and need scaling before use as an image.
# Formats whose compression changes pixel values: a mask saved this way grows ids along every edge.
LOSSY_MASK_SUFFIXES = (".jpg", ".jpeg")
_LOSSY_FORMATS = frozenset({"JPEG", "MPO"})
_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = frozenset({5, 6, 7, 8})  # the EXIF orientations that turn the image by 90 degrees

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"} | _SIXTEEN_BIT_MODES)
_MASK_INT_MODES = frozenset({"1", "L", "P", "I"} | _SIXTEEN_BIT_MODES)


class UnreadableFile(InputError):
    """An image or mask file that cannot be decoded (missing, truncated, not an image, a colour mode
    Pillow cannot convert): the file itself is broken, as opposed to a readable file whose content
    does not fit (a colour mask, a size that differs from its image)."""


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is no reason to refuse the pixels
        return 1


def display_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as viewers show it: its EXIF orientation applied."""
    w, h = img.size
    return (h, w) if _orientation(img) in _SWAPS_AXES else (w, h)


def lossy_mask_message(path: Path, fmt: str) -> str:
    """The one line refusing a mask stored in a lossy format."""
    return (
        f"mask '{path}' is stored as {fmt}, a lossy format: its compression adds wrong class ids along "
        "every edge; save masks as PNG files of class ids"
    )


def _open_loaded(path: Path, what: str) -> Image.Image:
    """Open and fully decode `path`, turned to its EXIF orientation (a phone photo is stored as the
    sensor saw it, with a tag saying how to show it: the pixels a user sees, and labels, are the
    turned ones); any failure becomes an InputError naming the file."""
    if not path.is_file():
        raise UnreadableFile(f"cannot read {what} '{path}': file not found")
    try:
        with Image.open(path) as img:
            # load() inside the try: Image.open only reads the header, so a truncated file would
            # otherwise pass here and fail later far from its name.
            img.load()
            if what == "mask" and img.format in _LOSSY_FORMATS:
                raise InputError(lossy_mask_message(path, img.format))
            if _orientation(img) != 1:
                turned = ImageOps.exif_transpose(img)
                return turned if turned is not None else img
            return img
    except InputError:
        raise
    except Exception as exc:
        raise UnreadableFile(
            f"cannot read {what} '{path}': truncated or not an image "
            f"(re-export or remove it; {type(exc).__name__}: {exc})"
        ) from exc


def _to_uint8_gray(img: Image.Image) -> np.ndarray:
    """A single-band image of any depth as HxW uint8."""
    if img.mode in ("L", "1"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if img.mode in ("LA", "La"):
        return np.asarray(img.getchannel(0), dtype=np.uint8)
    arr = np.asarray(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        # Full-range 16-bit -> 8-bit with rounding; a fixed scale (not per-image stretching) keeps
        # brightness comparable across the images of one dataset.
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.mode == "I":
        arr = arr.astype(np.int64)
        if arr.min() >= 0 and arr.max() <= 255:
            return arr.astype(np.uint8)
        if arr.min() >= 0 and arr.max() <= 65535:
            return ((arr + 128) // 257).astype(np.uint8)
        return _stretch(arr.astype(np.float64))
    # Mode "F": float TIFFs are most often 0..1 intensities; anything else is stretched to its range.
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if arr.min() >= 0.0 and arr.max() <= 1.0:
        return np.rint(arr * 255.0).astype(np.uint8)
    return _stretch(arr)


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.rint((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 RGB -> HxWx1 gray by Pillow's ITU-R 601 luma (L = 0.299 R + 0.587 G + 0.114 B).

    The one colour-to-gray rule: training reads gray images with it (`read_image(channels=1)`), and
    `Segmenter`, calibration, parity and the benchmark convert colour frames for gray models with it,
    so a gray model sees the same pixels everywhere. uint8 stays uint8 with Pillow's rounding; other
    dtypes give float32 (for frames already converted to float on the 0..255 scale).
    """
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))[:, :, None]
    return (rgb.astype(np.float32, copy=False) @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]


def read_image(path: str | os.PathLike[str], channels: int | None = None) -> np.ndarray:
    """Read an image file as uint8 HxWxC in RGB order.

    Gray-like files (L, 1, LA, 16-bit, 32-bit int, float) give C=1, everything else (RGB, RGBA,
    palette, CMYK, ...) gives C=3; alpha is dropped. `channels=1` forces grayscale (Pillow's "L"
    luma), `channels=3` forces RGB. Raises `InputError` naming the file if it cannot be decoded.
    """
    if channels not in (None, 1, 3):
        raise InputError(f"channels must be 1 or 3; got {channels!r}")
    path = Path(path)
    img = _open_loaded(path, "image")
    if img.mode in _GRAY_MODES:
        arr = _to_uint8_gray(img)
        if channels == 3:
            return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
        return arr[:, :, None]
    try:
        rgb = img.convert("RGB")
    except (ValueError, OSError) as exc:  # exotic modes (LAB, HSV, ...) Pillow cannot convert
        raise UnreadableFile(
            f"cannot read image '{path}': unsupported colour mode {img.mode}; re-export it as RGB or gray"
        ) from exc
    if channels == 1:
        return rgb_to_gray(np.asarray(rgb, dtype=np.uint8))
    return np.asarray(rgb, dtype=np.uint8)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mask file as an HxW array of integer class ids (uint8, uint16 or int32 as stored).

    Single-channel masks (L, 1, I;16, I) are taken as is; for palette PNGs the palette index is the
    class id. An RGB(A) mask whose three channels are equal is read from one channel; a colour-coded
    mask raises `InputError`, since mapping colours to ids needs a table the folder does not carry.
    """
    path = Path(path)
    img = _open_loaded(path, "mask")
    if img.mode in _MASK_INT_MODES:
        arr = np.asarray(img)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise InputError(f"mask '{path}' holds negative values; masks must hold class ids 0..N-1")
        return arr
    if img.mode in ("LA", "La"):
        return np.asarray(img.getchannel(0), dtype=np.uint8)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or np.any(arr != np.rint(arr)) or (arr.size and arr.min() < 0):
            raise InputError(f"mask '{path}' holds non-integer values; masks must hold class ids 0..N-1")
        return arr.astype(np.int32)
    if img.mode in ("RGB", "RGBA", "RGBX", "RGBa"):
        rgb = np.asarray(img)[:, :, :3]
        if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]):
            return np.ascontiguousarray(rgb[:, :, 0])
    raise InputError(
        f"mask '{path}' is a colour image (mode {img.mode}); masks must hold class ids in one channel "
        "(save them as 8-bit grayscale or palette PNGs whose values are the class ids)"
    )


RESIZE_KERNELS = ("pillow", "torch")


def resize_image(
    img: np.ndarray, size_wh: tuple[int, int], *, parallel: bool = False, kernel: str = "pillow"
) -> np.ndarray:
    """Resize an HxW or HxWxC image to `size_wh` = (width, height) with bilinear filtering.

    Returns the input unchanged when it already has that size; keeps the channel axis (also C=1) and
    the dtype (uint8 via Pillow's L/RGB modes, other dtypes per channel in float). `parallel` splits a
    large uint8 frame into horizontal strips resized on the usable cores at once; the result is
    bit-identical to the one-piece resize (see `_resize_strips`). `kernel="torch"` resizes uint8
    colour frames with PyTorch's vectorised copy of Pillow's filter (`edgeseg._torch_resize`: within
    1 grey level of Pillow); other images keep Pillow.
    """
    width, height = size_wh
    if img.shape[:2] == (height, width):
        return img
    if kernel == "torch" and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3:
        return resize_rgb(img, width, height)
    if img.dtype == np.uint8 and (img.ndim == 2 or img.shape[2] in (1, 3)):
        plane = img if img.ndim == 2 else (img[:, :, 0] if img.shape[2] == 1 else img)
        out = _resize_strips(plane, width, height) if parallel else None
        if out is None:
            out = np.asarray(Image.fromarray(plane).resize((width, height), Image.Resampling.BILINEAR))
        return out[:, :, None] if img.ndim == 3 and img.shape[2] == 1 else out
    planes = img[:, :, None] if img.ndim == 2 else img
    resized = [
        np.asarray(
            Image.fromarray(planes[:, :, c].astype(np.float32)).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(planes.shape[2])
    ]
    out = np.stack(resized, axis=2)
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(img.dtype)
    return out[:, :, 0] if img.ndim == 2 else out


# Below this many source pixels a strip's thread hand-off costs more than it saves.
_PARALLEL_MIN_PIXELS = 150_000
_strip_pool: ThreadPoolExecutor | None = None
_strip_lock = threading.Lock()


def _forget_strip_pool() -> None:
    # A forked child (a DataLoader worker) inherits the pool object but not its threads.
    global _strip_pool
    _strip_pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_strip_pool)


def _strip_workers() -> tuple[ThreadPoolExecutor | None, int]:
    """(the pool of strip threads, how many strips run at once: its threads and the caller)."""
    global _strip_pool

    cores = usable_cores()
    if cores < 2:
        return None, 1
    with _strip_lock:
        if _strip_pool is None:
            _strip_pool = ThreadPoolExecutor(cores - 1, thread_name_prefix="edgeseg-resize")
        return _strip_pool, cores


def _resize_strips(plane: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Pillow's bilinear resize of a uint8 HxW or HxWx3 frame, computed in horizontal strips on
    several threads (Pillow releases the GIL while it resamples); None where one piece is as good.

    Bit-identical to the one-piece resize: each strip is the frame's rows that the strip's output
    rows read (Pillow's filter support, clipped to the frame), resized with Pillow's `box` set to the
    strip's exact share of the frame, so every output row sees the same taps and weights. Strip edges
    are placed only where the frame row `y * H / h` is a whole number, which keeps the box exact in
    Pillow's float32 arithmetic.
    """
    src_h, src_w = plane.shape[:2]
    if src_h * src_w < _PARALLEL_MIN_PIXELS:
        return None
    step = height // math.gcd(src_h, height)  # output rows between exact frame rows
    pool, at_once = _strip_workers()
    if pool is None or height < 2 * step:
        return None
    n = min(at_once, height // step)
    per = math.ceil(height / n / step) * step
    out = np.empty((height, width, *plane.shape[2:]), np.uint8)
    scale = src_h / height
    support = max(scale, 1.0)  # the bilinear filter's half-width in frame rows

    def strip(start: int, stop: int) -> None:
        # Pillow's own bounds: int(centre -/+ support + 0.5), clipped to the frame.
        lo = max(int((start + 0.5) * scale - support + 0.5), 0)
        hi = min(int((stop - 0.5) * scale + support + 0.5), src_h)
        box = (0.0, start * src_h / height - lo, float(src_w), stop * src_h / height - lo)
        part = Image.fromarray(plane[lo:hi]).resize((width, stop - start), Image.Resampling.BILINEAR, box=box)
        out[start:stop] = np.asarray(part)

    jobs = [pool.submit(strip, s, min(s + per, height)) for s in range(per, height, per)]
    strip(0, min(per, height))  # the calling thread takes the first strip
    for job in jobs:
        job.result()
    return out


def resize_mask(mask: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resize an HxW (or HxWx1) mask to `size_wh` = (width, height) with nearest-neighbour sampling.

    Done with numpy index arithmetic so any integer dtype (also ids > 255) survives; the sampling uses
    pixel centres, the same convention as Pillow's bilinear resize of the matching image.
    """
    width, height = size_wh
    src_h, src_w = mask.shape[:2]
    if (src_h, src_w) == (height, width):
        return mask
    rows = np.minimum(((np.arange(height) + 0.5) * (src_h / height)).astype(np.intp), src_h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (src_w / width)).astype(np.intp), src_w - 1)
    # Two 1-D gathers, columns first on the small source rows: on 128x128 -> 1280x720 ids this is
    # ~70x faster than one 2-D fancy index, which builds a full-size index array.
    return np.take(np.take(mask, cols, axis=1), rows, axis=0)


_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[xX,]\s*(\d+)\s*)?$")


def parse_img_size(text: str) -> tuple[int, int]:
    """Parse an --img-size value: "256" -> (256, 256); "480x352", "480X352", "480,352" -> (480, 352)."""
    match = _SIZE_RE.match(str(text))
    if match:
        width = int(match.group(1))
        height = int(match.group(2)) if match.group(2) is not None else width
        if width > 0 and height > 0:
            return width, height
    raise InputError(f"--img-size must be N or WxH, e.g. 256 or 480x352; got '{text}'")


def parse_frame_size(text: str) -> tuple[int, int]:
    """Parse a --frame-size value, which names both sides: "1280x720" -> (1280, 720). A bare "640" is
    refused: a camera frame is rarely square, and reading it as 640x640 would time the wrong frame."""
    match = _SIZE_RE.match(str(text))
    if match and match.group(2) is not None and int(match.group(1)) > 0 and int(match.group(2)) > 0:
        return int(match.group(1)), int(match.group(2))
    raise InputError(f"--frame-size must be WxH, e.g. 1280x720; got '{text}'")

"""The Segmenter's pre- and postprocessing: frames to network input, logits to masks.

numpy and Pillow only (no torch, no runtime), so a deployed process stays light. The arithmetic is
training's: colour frames become gray with Pillow's luma (as `read_image(channels=1)` does), frames
are resized with the same bilinear filter, normalised with the same `normalize`, and masks are
brought back to the frame's size with the same nearest-neighbour sampling as `resize_mask`.

A model whose graph does its own pre/postprocessing (manifest `input.graph_steps`, see
edgeseg.exporters.prepost) gets the frame itself, as uint8 HxWxC in the graph's `frame_order`
(`prepare_fused_frame`), and returns class ids at the network's size that `restore_ids` brings to the
frame's size; only frames in another channel order or channel count are converted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg._guards import check_number
from edgeseg.data.imageio import RESIZE_KERNELS, resize_image, resize_mask, rgb_to_gray
from edgeseg.data.transforms import normalize
from edgeseg.errors import InputError
from edgeseg.manifest import Manifest
from edgeseg.runtimes.base import TensorSpec

__all__ = [
    "COLOR_ORDERS",
    "INPUT_FORMATS",
    "RESIZE_POLICIES",
    "Overrides",
    "Placement",
    "Preprocessing",
    "prepare_frame",
    "prepare_fused_frame",
    "resize_kernel_choice",
    "resolve_preprocessing",
    "restore_ids",
    "restore_output",
]

RESIZE_POLICIES = ("stretch", "letterbox")
COLOR_ORDERS = ("RGB", "BGR", "GRAY")  # the network's input channels
INPUT_FORMATS = ("bgr", "rgb")  # the caller's colour frames (OpenCV gives BGR)


@dataclass(frozen=True)
class Overrides:
    """Preprocessing the caller states explicitly; each one wins over the model's metadata."""

    img_size: tuple[int, int] | None = None  # (width, height)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    color_order: str | None = None
    resize: str | None = None
    class_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Preprocessing:
    """How a frame becomes the network input and which tensors carry it, fully resolved."""

    input_name: str
    output_name: str
    channels: int
    width: int
    height: int
    color_order: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str
    class_names: tuple[str, ...]
    dtype: str = "float32"
    graph_steps: tuple[str, ...] = ()  # preprocessing the graph does itself (empty: all done here)
    frame_order: str = ""  # with graph_steps: the channel order the graph takes frames in
    mask_name: str = ""  # the graph's class-id output, when it does the argmax
    resize_kernel: str = "pillow"  # who runs the host-side resize: "pillow" or "torch" (RESIZE_KERNELS)
    probabilities: bool = False  # the output already holds class probabilities (the graph's softmax)

    @property
    def fused(self) -> bool:
        """Whether the graph takes uint8 NHWC frames and normalises them itself (`graph_steps` says
        whether it also resizes them: TensorRT's does; the CPU runtimes' get them resized here)."""
        return bool(self.graph_steps)


@dataclass(frozen=True)
class Placement:
    """Where a frame's content lies in the network input (the whole of it unless letterboxed)."""

    frame_height: int
    frame_width: int
    top: int
    left: int
    height: int
    width: int


def _pick(specs: Sequence[TensorSpec], name: str | None, what: str, where: str) -> TensorSpec:
    named = [s for s in specs if s.name == name]
    if named:
        return named[0]
    if len(specs) == 1 or (what == "output" and specs and name is None):
        return specs[0]  # a model from elsewhere with several outputs: the first is the logits
    raise InputError(
        f"{where}: cannot tell which {what} to use among {[s.name for s in specs]}; "
        "edgeseg runs models with one image input and the logits as first output"
    )


def resize_kernel_choice(value: str) -> str:
    """A `resize_kernel` option, checked: "pillow" (default: Pillow itself, in strips on the usable
    cores) or "torch" (PyTorch's vectorised copy of Pillow's filter for colour frames; needs torch)."""
    kernel = str(value).strip().lower()
    if kernel not in RESIZE_KERNELS:
        raise InputError(f"resize_kernel must be one of {', '.join(RESIZE_KERNELS)}; got '{value}'")
    if kernel == "torch":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise InputError("resize_kernel 'torch' needs PyTorch installed; use 'pillow'")
    return kernel


def resolve_preprocessing(
    manifest: Manifest | None,
    overrides: Overrides,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    where: str,
) -> Preprocessing:
    """Combine the caller's overrides, the model's metadata and facts of its graph (static sizes).

    Raises InputError listing what is missing (a model without edgeseg metadata) or inconsistent.
    """
    inp = _pick(inputs, manifest.input.name if manifest else None, "input", where)
    out = _pick(outputs, manifest.output.name if manifest else None, "output", where)
    if len(inp.shape) != 4 or len(out.shape) != 4:
        raise InputError(f"{where}: edgeseg runs models with NCHW image input and logits; got {inp}, {out}")
    meta = manifest.input if manifest else None
    if meta is not None and meta.graph_steps and manifest is not None:
        return _fused(manifest, overrides, inp, out, where)
    static_hw = (inp.static_dim(3), inp.static_dim(2))
    size = overrides.img_size or ((meta.width, meta.height) if meta else None)
    size = size or (static_hw if None not in static_hw else None)
    mean = overrides.mean or (meta.mean if meta else None)
    std = overrides.std or (meta.std if meta else None)
    channels = inp.static_dim(1) or (meta.channels if meta else None) or (len(mean) if mean else None)
    order = (
        overrides.color_order or (meta.color_order if meta else None) or ("GRAY" if channels == 1 else None)
    )
    classes = out.static_dim(1)
    names = overrides.class_names or (manifest.class_names if manifest else None)
    names = names or (tuple(f"class{i}" for i in range(classes)) if classes else None)
    missing = [
        label
        for label, value in (
            ("mean", mean),
            ("std", std),
            ("color_order", order),
            ("img_size", size),
            ("class_names (or classes)", names),
        )
        if value is None
    ]
    if missing:
        flags = ", ".join(
            "--" + m.split(" ")[0].replace("_", "-").replace("class-names", "classes") for m in missing
        )
        raise InputError(
            f"{where} carries no edgeseg metadata, so its preprocessing must be given: pass "
            f"{', '.join(missing)} to Segmenter (e.g. mean=(0.485, 0.456, 0.406), "
            "std=(0.229, 0.224, 0.225), color_order='RGB', img_size=(256, 256), classes=2); "
            f"on the command line {flags}"
        )
    assert mean is not None and std is not None and order is not None and size is not None and names
    pre = Preprocessing(
        input_name=inp.name,
        output_name=out.name,
        channels=int(channels or len(mean)),
        width=int(size[0]),
        height=int(size[1]),
        color_order=str(order).upper(),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        resize=str(overrides.resize or (meta.resize if meta else "stretch")).lower(),
        class_names=tuple(str(n) for n in names),
        dtype=inp.dtype,
        probabilities=manifest is not None and "softmax" in manifest.output.graph_steps,
    )
    _check(pre, inp, classes, meta.size_multiple if meta else 1, where)
    return pre


def _fused(
    manifest: Manifest, overrides: Overrides, inp: TensorSpec, out: TensorSpec, where: str
) -> Preprocessing:
    """The preprocessing of a graph with pre/post inside (its manifest's): it normalises frames (and,
    with "resize" in its steps, resizes them) itself."""
    meta = manifest.input
    size = overrides.img_size or (meta.width, meta.height)
    if size != (meta.width, meta.height):
        raise InputError(
            f"{where} has its pre/post in the graph, built for {meta.width}x{meta.height}; img_size "
            f"{size[0]}x{size[1]} needs a model exported without pre/post in the graph (--no-fuse-prepost)"
        )
    if (
        (overrides.resize or meta.resize) != "stretch"
        or overrides.mean
        or overrides.std
        or overrides.color_order
    ):
        raise InputError(
            f"{where} does its normalisation inside its graph; resize, mean, std and "
            "color_order cannot be overridden (export with --no-fuse-prepost to choose them here)"
        )
    if inp.dtype != "uint8" or out.static_dim(1) not in (None, manifest.output.classes):
        raise InputError(f"{where}: its graph does not match its manifest (input {inp}, output {out})")
    return Preprocessing(
        input_name=inp.name,
        output_name=out.name,
        channels=meta.channels,
        width=meta.width,
        height=meta.height,
        color_order=meta.color_order,
        mean=meta.mean,
        std=meta.std,
        resize="stretch",
        class_names=overrides.class_names or manifest.class_names,
        dtype="uint8",
        graph_steps=meta.graph_steps,
        frame_order=meta.frame_order or ("GRAY" if meta.channels == 1 else "BGR"),
        mask_name=manifest.output.mask if "argmax" in manifest.output.graph_steps else "",
        probabilities="softmax" in manifest.output.graph_steps,
    )


def _check(pre: Preprocessing, inp: TensorSpec, classes: int | None, multiple: int, where: str) -> None:
    if pre.channels not in (1, 3):
        raise InputError(f"{where}: edgeseg runs 1- or 3-channel image models; this one takes {pre.channels}")
    if len(pre.mean) != pre.channels or len(pre.std) != pre.channels:
        raise InputError(
            f"{where}: mean and std need {pre.channels} values (one per channel); "
            f"got {len(pre.mean)} and {len(pre.std)}"
        )
    for i, (m, sd) in enumerate(zip(pre.mean, pre.std, strict=True)):
        check_number(m, f"{where}: mean[{i}]")
        check_number(sd, f"{where}: std[{i}]", minimum=0.0, min_open=True)
    if pre.color_order not in COLOR_ORDERS or (pre.color_order == "GRAY") != (pre.channels == 1):
        raise InputError(
            f"{where}: color_order '{pre.color_order}' does not suit a {pre.channels}-channel model; "
            f"use {'GRAY' if pre.channels == 1 else 'RGB or BGR'}"
        )
    if pre.resize not in RESIZE_POLICIES:
        raise InputError(f"resize must be one of {', '.join(RESIZE_POLICIES)}; got '{pre.resize}'")
    if np.dtype(pre.dtype).kind != "f":
        raise InputError(f"{where}: the image input has dtype {pre.dtype}; edgeseg feeds float tensors")
    fixed = (inp.static_dim(3), inp.static_dim(2))
    if None not in fixed and fixed != (pre.width, pre.height):
        raise InputError(
            f"img_size {pre.width}x{pre.height} does not match the model's fixed input {fixed[0]}x{fixed[1]}"
        )
    if pre.width <= 0 or pre.height <= 0 or pre.width % multiple or pre.height % multiple:
        raise InputError(f"img_size {pre.width}x{pre.height}: width and height must divide by {multiple}")
    if classes is not None and classes != len(pre.class_names):
        raise InputError(
            f"{where}: the model outputs {classes} classes but {len(pre.class_names)} class names were given"
        )


def _as_frame(frame: object) -> np.ndarray:
    """Validate a frame; returns HxWxC (C 1 or 3), uint8 or float32."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"a frame must be a numpy array (HxWx3 BGR uint8, or HxW gray); got {type(frame)}")
    img = frame[:, :, None] if frame.ndim == 2 else frame
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise InputError(
            f"a frame must be HxWx3 (colour), HxWx1 or HxW (gray); got shape {frame.shape} "
            f"({img.shape[2] if img.ndim == 3 else '?'} channels)"
        )
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"empty frame (shape {frame.shape})")
    if img.dtype == np.uint8:
        return img
    if img.dtype.kind != "f":
        raise InputError(f"frames must be uint8, or float in 0..1 or 0..255; got {img.dtype}")
    img = img.astype(np.float32, copy=False)
    if not np.isfinite(img).all():
        raise InputError("frame contains NaN or Inf values")
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 255.0:
        raise InputError(
            f"float frame holds values in {lo:.3g}..{hi:.3g}; pass the image itself (uint8, or float in "
            "0..1 or 0..255), not a normalised tensor: the Segmenter normalises"
        )
    # The one float convention: a frame whose values all lie in 0..1 is on the 0..1 scale (what
    # skimage, torchvision and cv2's float conversions give); a 0..255 frame that dark would be black.
    return img * 255.0 if hi <= 1.0 else img


def _in_model_channels(img: np.ndarray, pre: Preprocessing, size: tuple[int, int], fmt: str) -> np.ndarray:
    """The frame resized to `size` (width, height), in the model's channels and order.

    Reordering channels and repeating gray commute with the per-channel bilinear resize, so they run
    after it, on the smaller image (on a VGA frame that halves the preprocessing time); colour to gray
    runs first, as training converted images before resizing them.
    """
    if img.shape[2] == 3 and pre.channels == 1:
        return resize_image(rgb_to_gray(img[:, :, ::-1] if fmt == "bgr" else img), size, parallel=True)
    small = resize_image(img, size, parallel=True, kernel=pre.resize_kernel)
    if small.shape[2] == 1:
        return small if pre.channels == 1 else np.repeat(small, 3, axis=2)  # gray is gray in any order
    return small[:, :, ::-1] if (fmt == "bgr") != (pre.color_order == "BGR") else small


def prepare_frame(frame: np.ndarray, pre: Preprocessing, input_format: str) -> tuple[np.ndarray, Placement]:
    """One frame -> (CxHxW network input of `pre.dtype`, where the frame's content lies in it)."""
    img = _as_frame(frame)
    h, w = img.shape[:2]
    if pre.resize == "stretch":
        x = normalize(_in_model_channels(img, pre, (pre.width, pre.height), input_format), pre.mean, pre.std)
        return x.astype(pre.dtype, copy=False), Placement(h, w, 0, 0, pre.height, pre.width)
    # Letterbox: keep the aspect ratio, centre the content, pad with the mean colour (0 once normalised).
    scale = min(pre.width / w, pre.height / h)
    nw, nh = max(1, min(pre.width, round(w * scale))), max(1, min(pre.height, round(h * scale)))
    top, left = (pre.height - nh) // 2, (pre.width - nw) // 2
    x = np.zeros((pre.channels, pre.height, pre.width), np.float32)
    content = _in_model_channels(img, pre, (nw, nh), input_format)
    x[:, top : top + nh, left : left + nw] = normalize(content, pre.mean, pre.std)
    return x.astype(pre.dtype, copy=False), Placement(h, w, top, left, nh, nw)


def restore_output(
    logits: np.ndarray, placement: Placement, with_probs: bool = False, probabilities: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """KxHxW logits -> (mask of class ids at the frame's size, KxHxW probabilities there or None).

    The mask is the argmax at the network's resolution, resized with nearest sampling; uint8 (uint16
    for more than 256 classes). Probabilities are the softmax of the logits, or the output itself
    when it already holds them (`probabilities`: a graph ending in a softmax), resized the same way,
    so their argmax is the mask.
    """
    p = placement
    crop = logits[:, p.top : p.top + p.height, p.left : p.left + p.width]
    ids = crop.argmax(0).astype(np.uint8 if crop.shape[0] <= 256 else np.uint16)
    mask = resize_mask(ids, (p.frame_width, p.frame_height))
    if not with_probs:
        return mask, None
    if probabilities:
        probs = crop.astype(np.float32)
    else:
        z = crop.astype(np.float32) - crop.max(0, keepdims=True)  # shifted: exp cannot overflow
        probs = np.exp(z)
        probs /= probs.sum(0, keepdims=True)
    probs = resize_mask(probs.transpose(1, 2, 0), (p.frame_width, p.frame_height)).transpose(2, 0, 1)
    return mask, np.ascontiguousarray(probs)


def prepare_fused_frame(frame: np.ndarray, pre: Preprocessing, input_format: str) -> np.ndarray:
    """One frame -> HxWxC uint8 in the graph's `frame_order`, for a graph doing its own preprocessing;
    resized to the model's size here (Pillow, as `prepare_frame`) when the graph does not resize.

    A frame already in that order (and resized by the graph) is passed as is (no copy). Colour
    frames for a gray model become gray by Pillow's luma, as in the numpy path; gray frames for a
    colour model are repeated to 3 channels; float frames (0..1 or 0..255, see `_as_frame`) are
    rounded to uint8, the graph's input type.
    """
    img = _as_frame(frame)
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if "resize" not in pre.graph_steps:
        if pre.frame_order == "GRAY" and img.shape[2] == 3:  # luma first, as training converted
            img = rgb_to_gray(img[:, :, ::-1] if input_format == "bgr" else img)
        img = resize_image(img, (pre.width, pre.height), parallel=True, kernel=pre.resize_kernel)
    if pre.frame_order == "GRAY":
        return img if img.shape[2] == 1 else rgb_to_gray(img[:, :, ::-1] if input_format == "bgr" else img)
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)  # gray is gray in any channel order
    return img if input_format == pre.frame_order.lower() else np.ascontiguousarray(img[:, :, ::-1])


def restore_ids(ids: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """HxW class ids at the network's size -> at the frame's size (`resize_mask`'s nearest sampling)."""
    return resize_mask(ids, (frame_hw[1], frame_hw[0]))

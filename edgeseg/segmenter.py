"""`Segmenter`: one class that runs any edgeseg model, from a checkpoint to an OpenVINO bundle.

    seg = Segmenter("runs/x/unet-openvino-fp32")      # bundle folder, .onnx, .xml, .engine or .pt
    result = seg(frame_bgr)                            # HxWx3 uint8 BGR (OpenCV's order), or HxW gray
    result.mask                                        # HxW uint8 class ids at the frame's size
    result.timings                                     # {"pre", "wait", "infer", "post", "total"} in ms

Two layers: the Segmenter owns pre/postprocessing and timing; a backend (edgeseg.runtimes) only moves
arrays. The preprocessing comes from the bundle's verified manifest, else from the metadata inside the
model file, else from the caller; explicit arguments always win. Only the chosen backend's runtime is
imported: running an ONNX or OpenVINO model never imports torch (unless resize_kernel="torch" asks).

Threads: a Segmenter may be shared by threads (a camera thread and a planning thread): each call
returns its caller the masks of its own frames and timings measured on its own call. The backend
keeps calls apart (edgeseg.runtimes.base: a lock, or one infer request per call on OpenVINO); the
Segmenter itself keeps no per-call state on the instance.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg._cpu import usable_cores
from edgeseg._guards import sequence_arg, size_arg
from edgeseg._logits import logits_scale, upsample_logits
from edgeseg._paths import MODEL_FILES, folder_not_file
from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.manifest import MANIFEST_NAME, Manifest, read_manifest
from edgeseg.preprocess import (
    INPUT_FORMATS,
    Overrides,
    Placement,
    Preprocessing,
    prepare_frame,
    prepare_fused_frame,
    resize_kernel_choice,
    resolve_preprocessing,
    restore_ids,
    restore_output,
)
from edgeseg.runtimes import Backend, artifact_kind, create_backend, resolve_backend, throughput_options

__all__ = ["MODES", "SegResult", "Segmenter"]

MODES = ("latency", "throughput")


@dataclass
class SegResult:
    """One frame's segmentation.

    Attributes:
        mask: HxW class ids at the frame's size (uint8; uint16 beyond 256 classes).
        timings: milliseconds of this call for "pre", "wait" (waiting for the runtime while another
            thread's call had it; 0 when the Segmenter is not shared), "infer", "post" and "total"
            (their sum). In `predict_batch`, "wait" and "infer" are the frame's share of its batch's
            (batch time / frames in it).
        probabilities: KxHxW class probabilities at the frame's size with `return_probs=True`, else None.
    """

    mask: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    probabilities: np.ndarray | None = None


def _locate(model: Path) -> tuple[Path, Manifest | None]:
    """(model file, verified bundle manifest or None) for a bundle folder or a model file."""
    if model.is_dir():
        if not (model / MANIFEST_NAME).is_file():
            raise InputError(
                folder_not_file(
                    model,
                    "model",
                    f"an edgeseg bundle (it has no {MANIFEST_NAME}); give a bundle folder or a model file "
                    f"({', '.join(MODEL_FILES)})",
                )
            )
        manifest = read_manifest(model, verify=True)
        return model / manifest.model_file, manifest
    if not model.is_file():
        raise InputError(f"model '{model}' does not exist")
    bundle = model.parent / MANIFEST_NAME
    if bundle.is_file():  # a model file inside a bundle: use (and verify) the bundle's manifest
        manifest = read_manifest(model.parent, verify=True)
        if manifest.model_file == model.name:
            return model, manifest
    return model, None


def _input_format(value: str) -> str:
    fmt = str(value).strip().lower()
    if fmt not in INPUT_FORMATS:
        raise InputError(f"input_format must be 'bgr' or 'rgb'; got '{value}'")
    return fmt


def _call_shares(wait_ms: float, call_ms: float, frames: int) -> tuple[float, float]:
    """(wait, infer) per frame of one backend call: its wait for the runtime, and the rest of the
    call's wall time (the run, input checks and output copies), each split over its frames."""
    wait = min(wait_ms, call_ms)
    return wait / frames, (call_ms - wait) / frames


class Segmenter:
    """Segment frames with an edgeseg model on any installed backend.

    Args:
        path: a bundle folder (its manifest and file hashes are verified), a `.onnx`, an OpenVINO
            `.xml`, a TensorRT `.engine`, or a checkpoint `.pt`.
        backend: "auto" (the best installed one for the model, keeping to the runtimes a bundle was
            exported for: an onnx bundle OpenVINO, then ONNX Runtime; a tensorrt bundle TensorRT; a
            bare .onnx TensorRT, then OpenVINO, then ONNX Runtime; see edgeseg.runtimes.registry) or
            a name: "onnxruntime", "openvino", "tensorrt", "torch".
        device: the backend's device ("cpu", "cuda", "GPU", ...); None for its default (CPU).
        input_format: channel order of colour frames, "bgr" (OpenCV, default) or "rgb".
        img_size: (width, height) the model runs at; needed for a model without metadata and a
            dynamic input, or to run a dynamic model at another size.
        mean, std, color_order, resize, classes, class_names: preprocessing overrides. A `.onnx` from
            elsewhere (no edgeseg metadata) needs mean, std and color_order (the model's channel
            order: "RGB", "BGR" or "GRAY"), plus img_size and classes when its graph does not fix them.
            resize is "stretch" (default) or "letterbox" (keep the aspect ratio, pad with the mean).
        resize_kernel: who runs the resize of frames to the model's size where it happens on the
            host: "pillow" (default: Pillow's bilinear filter, the one training used, split into
            strips on the usable cores, bit-identical to one Pillow call) or "torch" (PyTorch's
            vectorised copy of that filter: within 1 grey level, several times faster on colour
            camera frames, and it imports torch into the process). TensorRT graphs resize on the GPU.
        mode: "latency" (default: one frame as fast as possible, a camera loop) or "throughput"
            (many frames: the runtime's own parallelism, for `predict_many`/`predict_batch`):
            OpenVINO gets performance_hint="THROUGHPUT" (several streams and infer requests), ONNX
            Runtime runs a batch as one-thread runs in parallel (parallel=the usable cores,
            threads=1), and frames are preprocessed in threads. Explicit backend options win.
        **backend_options: passed to the backend, e.g. threads=2 (every backend takes it),
            providers=[...] for onnxruntime, performance_hint="THROUGHPUT" for openvino.

    Threads: any thread may call a Segmenter, also while others do; each call gets the masks of its
    own frames, and timings of its own call ("wait" is the time it queued behind other threads'
    calls). `predict_batch` and `predict_many` return results in the order of their frames. One
    shared Segmenter holds one copy of the model; whether threads' calls overlap depends on the
    backend (OpenVINO and ONNX Runtime run them in parallel, TensorRT and PyTorch one at a time).
    Close it once no thread uses it any more: `close()` waits for calls in flight, and later calls
    raise EdgesegRuntimeError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "auto",
        device: str | None = None,
        *,
        input_format: str = "bgr",
        img_size: tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        color_order: str | None = None,
        resize: str | None = None,
        classes: int | None = None,
        class_names: Sequence[str] | None = None,
        mode: str = "latency",
        resize_kernel: str = "pillow",
        **backend_options: Any,
    ) -> None:
        self.input_format = _input_format(input_format)
        kernel = resize_kernel_choice(resize_kernel)
        self.mode = str(mode).strip().lower()
        if self.mode not in MODES:
            raise InputError(f"mode must be 'latency' or 'throughput'; got '{mode}'")
        self._workers = 1
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._closing = threading.Lock()  # close() from two threads shuts the pool down once
        if class_names is not None:
            class_names = sequence_arg(class_names, "class_names", 'class_names=["background", "road"]')
        if classes is not None and class_names is not None and len(class_names) != classes:
            raise InputError(f"classes={classes} but {len(class_names)} class_names were given")
        names = class_names or ([f"class{i}" for i in range(classes)] if classes else None)
        if mean is not None:
            mean = sequence_arg(mean, "mean", "mean=(0.485, 0.456, 0.406)")
        if std is not None:
            std = sequence_arg(std, "std", "std=(0.229, 0.224, 0.225)")
        overrides = Overrides(
            img_size=size_arg(img_size) if img_size is not None else None,
            mean=tuple(mean) if mean else None,
            std=tuple(std) if std else None,
            color_order=color_order,
            resize=resize,
            class_names=tuple(names) if names else None,
        )
        model_file, manifest = _locate(Path(path))
        kind, where = artifact_kind(model_file), f"'{path}'"
        target = manifest.target if manifest else None
        steps = manifest.input.graph_steps if manifest else ()
        name = resolve_backend(backend, kind, target, steps, where)
        if self.mode == "throughput":
            backend_options = {**throughput_options(name), **backend_options}
            self._workers = usable_cores()
        if self._workers > 1:  # made now, not at the first call: two threads' first calls would race
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="edgeseg-pre")
        try:
            self._backend: Backend = create_backend(name, model_file, device=device, **backend_options).load()
        except BaseException:
            self._shutdown_pool()
            raise
        try:
            self._manifest = manifest or self._backend.embedded_manifest
            if manifest is None and self._manifest is not None:  # a bare .onnx: what its metadata says
                resolve_backend(name, kind, None, self._manifest.input.graph_steps, where)
            self._pre = resolve_preprocessing(
                self._manifest,
                overrides,
                self._backend.input_specs,
                self._backend.output_specs,
                f"model '{path}'",
            )
            self._pre = replace(self._pre, resize_kernel=kernel)
        except BaseException:
            self._backend.close()
            self._shutdown_pool()
            raise

    @property
    def backend(self) -> Backend:
        """The backend running the model."""
        return self._backend

    @property
    def backend_name(self) -> str:
        """The backend's registry name, e.g. "openvino"."""
        return self._backend.name

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the class ids in the masks."""
        return self._pre.class_names

    @property
    def manifest(self) -> Manifest | None:
        """The model's manifest (bundle or embedded metadata); None for a model from elsewhere."""
        return self._manifest

    @property
    def preprocessing(self) -> Preprocessing:
        """The resolved preprocessing: input size, channels, colour order, normalisation, resize."""
        return self._pre

    def __call__(
        self, frame: np.ndarray, *, input_format: str | None = None, return_probs: bool = False
    ) -> SegResult:
        """Segment one frame (HxWx3 uint8 in `input_format`, or HxW / HxWx1 gray)."""
        return self.predict_batch([frame], input_format=input_format, return_probs=return_probs)[0]

    def predict_batch(
        self,
        frames: Sequence[np.ndarray],
        *,
        input_format: str | None = None,
        return_probs: bool = False,
        batch_size: int = 8,
    ) -> list[SegResult]:
        """Segment frames (of any sizes) in batches of up to `batch_size`.

        A model with a dynamic batch runs each batch in one call; one with a fixed batch of 1 runs it
        through the backend's batch path (OpenVINO's async queue, otherwise one frame at a time).
        """
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1; got {batch_size}")
        if self._closed:
            raise EdgesegRuntimeError(f"{self!r} was closed; create a new Segmenter to segment more frames")
        fmt = self.input_format if input_format is None else _input_format(input_format)
        results: list[SegResult] = []
        for start in range(0, len(frames), batch_size):
            results += self._run_batch(frames[start : start + batch_size], fmt, return_probs)
        return results

    def predict_many(
        self,
        frames: Iterable[np.ndarray],
        *,
        input_format: str | None = None,
        return_probs: bool = False,
        batch_size: int | None = None,
    ) -> Iterator[SegResult]:
        """Segment a stream of frames (any iterable, read lazily), yielding results in order.

        Frames are taken `batch_size` at a time (default: 2 per usable core in throughput mode, else
        8) and each batch goes through `predict_batch`, so a throughput-mode Segmenter keeps the
        runtime's streams busy; the masks are those of one call per frame.
        """
        size = batch_size or (2 * self._workers if self.mode == "throughput" else 8)
        if size < 1:
            raise InputError(f"batch_size must be >= 1; got {size}")
        chunk: list[np.ndarray] = []
        for frame in frames:
            chunk.append(frame)
            if len(chunk) == size:
                yield from self.predict_batch(chunk, input_format=input_format, return_probs=return_probs,
                                              batch_size=size)  # fmt: skip
                chunk = []
        if chunk:
            yield from self.predict_batch(chunk, input_format=input_format, return_probs=return_probs,
                                          batch_size=size)  # fmt: skip

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        """`fn` over `items`, in threads in throughput mode (Pillow and numpy release the GIL)."""
        pool = self._pool
        if pool is None or len(items) <= 1:
            return [fn(item) for item in items]
        try:
            return list(pool.map(fn, items))
        except RuntimeError:  # the pool was shut down: another thread closed the Segmenter
            if not self._closed:
                raise
            raise EdgesegRuntimeError(f"{self!r} was closed while this call ran") from None

    def _run_batch(self, frames: Sequence[np.ndarray], fmt: str, return_probs: bool) -> list[SegResult]:
        pre = self._pre
        if pre.fused:
            return self._run_fused(frames, fmt, return_probs)

        def prepare(frame: np.ndarray) -> tuple[np.ndarray, Placement, float]:
            t0 = time.perf_counter()
            x, placement = prepare_frame(frame, pre, fmt)
            return x, placement, (time.perf_counter() - t0) * 1000.0

        inputs, placements, pre_ms = zip(*self._map(prepare, frames), strict=True)
        t0 = time.perf_counter()
        outputs = self._backend.infer({pre.input_name: np.stack(inputs)})
        wait_ms, infer_ms = _call_shares(outputs.wait_ms, (time.perf_counter() - t0) * 1000.0, len(frames))
        logits = outputs[pre.output_name]
        hw = (pre.height, pre.width)
        # A graph from elsewhere whose logits are at 1/f of its input (SegFormer's 1/4): brought to
        # the input's size as an export's graph does it (edgeseg._logits), then restored.
        if logits.ndim == 4 and logits.shape[-2:] != hw and (logits_scale(logits.shape[-2:], hw) or 1) > 1:
            logits = upsample_logits(logits, hw)
        results = []
        for i, placement in enumerate(placements):
            t0 = time.perf_counter()
            mask, probs = restore_output(logits[i], placement, return_probs, pre.probabilities)
            post_ms = (time.perf_counter() - t0) * 1000.0
            timings = {"pre": pre_ms[i], "wait": wait_ms, "infer": infer_ms, "post": post_ms}
            timings["total"] = sum(timings.values())
            results.append(SegResult(mask, timings, probs))
        return results

    def _run_fused(self, frames: Sequence[np.ndarray], fmt: str, return_probs: bool) -> list[SegResult]:
        """Frames straight into a graph that resizes, normalises and takes the argmax itself; frames
        of one size share a call (a tensor holds one size), and only the ids are resized back here.
        A graph that does not resize (OpenVINO's) gets the frame resized to the model's size first."""
        pre = self._pre

        def prepare(frame: np.ndarray) -> tuple[np.ndarray, float]:
            t0 = time.perf_counter()
            return prepare_fused_frame(frame, pre, fmt), (time.perf_counter() - t0) * 1000.0

        imgs, pre_ms = zip(*self._map(prepare, frames), strict=True)
        sizes = [frame.shape[:2] for frame in frames]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(imgs):
            groups.setdefault(img.shape, []).append(i)
        results: list[SegResult | None] = [None] * len(frames)
        for members in groups.values():
            t0 = time.perf_counter()
            batch = imgs[members[0]][None] if len(members) == 1 else np.stack([imgs[i] for i in members])
            outputs = self._backend.infer({pre.input_name: batch})
            wait_ms, infer_ms = _call_shares(
                outputs.wait_ms, (time.perf_counter() - t0) * 1000.0, len(members)
            )
            for j, i in enumerate(members):
                t0 = time.perf_counter()
                hw = sizes[i]
                probs = None
                if return_probs or not pre.mask_name:
                    whole = Placement(hw[0], hw[1], 0, 0, pre.height, pre.width)
                    out = outputs[pre.output_name][j]
                    mask, probs = restore_output(out, whole, return_probs, pre.probabilities)
                else:
                    ids = outputs[pre.mask_name][j]
                    if ids.dtype.kind != "u":  # int32 ids of a TensorRT graph beyond 256 classes
                        ids = ids.astype(np.uint16)
                    mask = restore_ids(ids, hw)
                post_ms = (time.perf_counter() - t0) * 1000.0
                timings = {"pre": pre_ms[i], "wait": wait_ms, "infer": infer_ms, "post": post_ms}
                timings["total"] = sum(timings.values())
                results[i] = SegResult(mask, timings, probs)
        return [r for r in results if r is not None]

    def warmup(self, n: int = 3) -> None:
        """Run `n` blank frames through the model, so the first real frame is not the slow one
        (runtimes allocate and tune on their first calls)."""
        frame = np.zeros((self._pre.height, self._pre.width, self._pre.channels), np.uint8)
        for _ in range(n):
            self(frame)

    def close(self) -> None:
        """Release the backend once the calls in flight (on any thread) are done; the Segmenter
        cannot be used afterwards (a later call raises EdgesegRuntimeError). Safe to call twice."""
        self._closed = True
        self._backend.close()  # waits for calls in flight
        self._shutdown_pool()

    def _shutdown_pool(self) -> None:
        with self._closing:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        pre = self._pre
        return (
            f"Segmenter({self._backend.path}, backend={self.backend_name}, {pre.width}x{pre.height} "
            f"{pre.color_order}, {len(pre.class_names)} classes)"
        )

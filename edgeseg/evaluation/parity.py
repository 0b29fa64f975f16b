"""Parity: how closely an exported artifact reproduces its FP32 reference model on the same inputs.

The reference is the model the export started from (`Reference`): the checkpoint's PyTorch model,
or, for an ONNX file from another framework, that file run on ONNX Runtime's CPU provider. Both get
the same normalised float32 batches, so the figures measure the artifact alone (graph conversion,
runtime kernels, precision), not preprocessing. Reported: max and mean |Δlogit|, the fraction of
pixels whose argmax class agrees, the mIoU of the artifact's masks taken against the reference's
masks, and, with labelled data, the mIoU of both against the ground truth; per class, at the
boundaries and as class flips too (edgeseg.evaluation.classwise, the report's `classes`). (The report's
`*_pytorch*` keys hold the reference's figures whatever it is; its `reference` field names it.)

`run_artifact` executes an artifact with the runtime backend the format table names first for its
target (edgeseg.runtimes), on CPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._evidence import ClassSet, labelled_hint
from edgeseg._guards import recorded_path, require_finite
from edgeseg._torch_resize import tensor_of
from edgeseg.data import FolderDataset, SyntheticDataset, normalize
from edgeseg.data.imageio import rgb_to_gray
from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.evaluation.classwise import ClassParity
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.formats import TARGETS
from edgeseg.runtimes import create_backend, registered_backends

if TYPE_CHECKING:
    import torch

    from edgeseg.models.checkpoint import Checkpoint
    from edgeseg.runtimes import Backend

__all__ = [
    "ParityReport",
    "Reference",
    "measure_parity",
    "onnx_reference",
    "parity_backend",
    "parity_batches",
    "run_artifact",
]


@dataclass(frozen=True)
class ParityReport:
    """Agreement of an artifact with the PyTorch model. mIoU figures are on a 0..1 scale; the
    ground-truth ones are None without labelled data."""

    target: str
    precision: str
    runtime: str  # what executed the artifact, e.g. "onnxruntime 1.31.1 (CPUExecutionProvider)"
    inputs: str  # "synthetic (8 images)" or "val_data: PATH (34 images)"
    images: int
    img_size: tuple[int, int]  # (width, height) the comparison ran at
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    pixel_agreement: float
    miou_vs_pytorch: float
    miou_pytorch_vs_gt: float | None = None
    miou_artifact_vs_gt: float | None = None
    seconds: float = 0.0
    measured_on: str | None = None  # set when the run stands for another runtime (TensorRT's graph)
    reference: str = "PyTorch"  # the FP32 model compared with, e.g. "the source ONNX on onnxruntime"
    # Per-class and boundary figures (edgeseg.evaluation.classwise): the worst class is the judged
    # class that lost most IoU vs truth (labelled data), else the one least like the reference's.
    worst_class: str | None = None
    worst_class_drop_points: float | None = None
    boundary_f_vs_pytorch: float | None = None
    classes: dict[str, Any] | None = None
    # What the runtime computed the artifact in during this check, read back from it
    # (Backend.executed_precision), e.g. "fp32 (fp16 weights upcast)" for an fp16 graph on a CPU.
    executed_precision: str | None = None
    # What the |Δ| figures are measured on: "logits", or "probabilities" for a model whose graph
    # ends in a softmax (its outputs are compared as they are, never put through softmax again).
    output: str = "logits"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["img_size"] = list(self.img_size)
        # NaN (e.g. every ground-truth pixel ignored) is not valid JSON: store it as null.
        return {k: None if isinstance(v, float) and v != v else v for k, v in data.items()}

    def summary(self) -> str:
        """One line for people: the figures that decide whether the artifact can be trusted."""
        ref = "PyTorch" if self.reference == "PyTorch" else "source"
        delta = "Δprobability" if self.output == "probabilities" else "Δlogit"
        text = (
            f"parity {self.target}/{self.precision} vs {self.reference} on {self.inputs} at "
            f"{self.img_size[0]}x{self.img_size[1]}: max |{delta}| {self.max_abs_logit_diff:.2e}, "
            f"pixel agreement {self.pixel_agreement:.4%}, mIoU vs {ref} {self.miou_vs_pytorch:.4f}"
        )
        if self.miou_pytorch_vs_gt is not None and self.miou_artifact_vs_gt is not None:
            text += f", mIoU vs truth {self.miou_artifact_vs_gt:.4f} ({ref} {self.miou_pytorch_vs_gt:.4f})"
        if self.worst_class is not None:
            text += f", worst class {self.worst_class}"
            if self.worst_class_drop_points is not None:
                text += f" drops {self.worst_class_drop_points:.2f} IoU points"
            else:
                iou = ((self.classes or {}).get("worst") or [{}])[0].get("iou_vs_pytorch")
                text += f" (IoU vs {ref} {iou:.4f})" if iou is not None else ""
        if self.boundary_f_vs_pytorch is not None:
            text += f", boundary F vs {ref} {self.boundary_f_vs_pytorch:.4f}"
        if self.executed_precision:
            text += f"; computed in {self.executed_precision}"
        if self.measured_on:
            text += f"; measured on the {self.measured_on}"
        return text


@dataclass
class Reference:
    """The FP32 model an artifact is measured against, and how to feed it.

    `run` maps a normalised float32 NCHW batch to its logits (its class probabilities when
    `probabilities`: a graph that ends in a softmax); `label` is how reports name it
    ("PyTorch", or "the source ONNX on onnxruntime 1.x (CPUExecutionProvider)"); `close` releases
    what `run` holds; `source` is the model file and `class_names` its classes, which labelled data
    must agree with (`model_classes`). Use as a context manager.
    """

    label: str
    classes: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color_order: str
    ignore_index: int | None
    run: Callable[[np.ndarray], np.ndarray]
    close: Callable[[], None] = field(default=lambda: None)
    source: str = ""
    class_names: tuple[str, ...] = ()
    probabilities: bool = False

    def model_classes(self) -> ClassSet:
        """The reference model's classes, as data and other models must agree with them."""
        names = self.class_names or tuple(f"class{i}" for i in range(self.classes))
        return ClassSet.of(f"the model '{self.source}'" if self.source else self.label, names)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, model: torch.nn.Module | None = None) -> Reference:
        """The checkpoint's PyTorch model (`model` if given, else built from the checkpoint) on CPU."""
        import torch

        net = model if model is not None else ckpt.build_model("cpu")
        net.eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return net(tensor_of(x)).float().numpy()

        norm = ckpt.normalization
        return cls(
            label="PyTorch",
            classes=ckpt.model_config.classes,
            channels=ckpt.model_config.in_channels,
            mean=tuple(norm.mean),
            std=tuple(norm.std),
            color_order=norm.color_order,
            ignore_index=ckpt.ignore_index,
            run=run,
            source=str(ckpt.path) if ckpt.path is not None else "",
            class_names=tuple(ckpt.class_names),
        )

    def __enter__(self) -> Reference:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def onnx_reference(
    path: str | os.PathLike[str],
    *,
    classes: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    color_order: str,
    ignore_index: int | None = None,
    class_names: Sequence[str] = (),
) -> Reference:
    """An ONNX file as the reference, run as given by ONNX Runtime's CPU provider (loaded now)."""

    backend = create_backend("onnxruntime", path, device="cpu").load()
    return Reference(
        label=f"the source ONNX on {backend.description}",
        classes=classes,
        channels=len(mean),
        mean=tuple(mean),
        std=tuple(std),
        color_order=color_order,
        ignore_index=ignore_index,
        run=lambda x: _logits(backend, x).astype(np.float32),
        close=backend.close,
        source=str(path),
        class_names=tuple(class_names),
    )


def _parity_backend_name(target: str) -> str:

    runnable = {t.name: t.parity_backend for t in TARGETS.values() if t.backends}
    runnable = {t: b for t, b in runnable.items() if b in registered_backends()}
    if target not in runnable:
        raise InputError(f"no parity runner for target '{target}'; available: {', '.join(runnable)}")
    return runnable[target]


def parity_backend(target: str, path: str | os.PathLike[str]) -> Backend:
    """The backend parity runs `target`'s artifact with, unloaded: the first backend the format table
    lists for the target (ONNX Runtime for .onnx, OpenVINO for the IR), on CPU with its defaults
    (the precision the artifact declares, never a lower one: see edgeseg.targets.openvino.backend); the
    report records what it computed in (`executed_precision`).

    Raises InputError for a target no registered backend runs.
    """

    return create_backend(_parity_backend_name(target), path, device="cpu")


def run_artifact(target: str, path: str | os.PathLike[str], batch: np.ndarray) -> np.ndarray:
    """Logits of the artifact at `path` for a float32 NCHW `batch`, computed on CPU.

    A graph whose batch size is fixed to 1 is run one image at a time. A file that cannot be loaded
    raises InputError (corrupt, truncated, missing); a failed run raises EdgesegRuntimeError.
    """
    with parity_backend(target, path) as backend:
        return _logits(backend, np.asarray(batch, dtype=np.float32))


def _logits(backend: Backend, batch: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
    # edgeseg's graphs have one image input and the logits as first output; names come from the model.
    # A graph with pre/post inside (uint8 input) takes the frames themselves, NHWC in its frame order.
    spec = backend.input_specs[0]
    if spec.dtype == "uint8":
        if frames is None:
            raise InputError(f"'{backend.path}' takes uint8 frames (pre/post in the graph), not tensors")
        batch = np.ascontiguousarray(frames)
    return backend.infer({spec.name: batch})[backend.output_specs[0].name]


def _to_channels(images: np.ndarray, channels: int, color_order: str) -> np.ndarray:
    """uint8 RGB NHWC -> the model's channels: gray by `rgb_to_gray` (as read_image does), or BGR."""
    if channels == 1 and images.shape[-1] == 3:
        return np.stack([rgb_to_gray(img) for img in images])
    return images[..., ::-1] if color_order.upper() == "BGR" else images


def _frame_order(images: np.ndarray, color_order: str) -> np.ndarray:
    """Images in the model's channel order -> the order a fused graph takes frames in (BGR or gray)."""
    return images[..., ::-1] if color_order.upper() == "RGB" else images


@dataclass(frozen=True)
class ParityInputs:
    """The comparison inputs (`parity_batches`): a description, the image count, the batches of
    (uint8 NHWC images, masks or None) and, for labelled data, the masks' labelled pixels in their
    own files (`FolderDataset.labelled_pixels`; None for synthetic scenes)."""

    desc: str
    count: int
    batches: Iterator[tuple[np.ndarray, np.ndarray | None]]
    labelled_pixels: int | None = None

    def __iter__(self) -> Iterator[Any]:  # (desc, count, batches), as callers unpack it
        return iter((self.desc, self.count, self.batches))


def parity_batches(
    ref: Reference,
    img_size: tuple[int, int],
    *,
    val_data: str | os.PathLike[str] | None = None,
    images: int = 8,
    batch_size: int = 8,
) -> ParityInputs:
    """The comparison inputs at `img_size`.

    With `val_data`: the labelled folder, whose classes must be the reference's
    (`Reference.model_classes`; InputError naming both otherwise), with its ignore id.
    Without: `images` synthetic scenes, whose masks are not compared (their classes are not the model's).
    """

    labelled_pixels = None
    if val_data is not None:
        ds: Any = FolderDataset(
            val_data,
            img_size=img_size,
            num_classes=ref.model_classes(),
            ignore_index=ref.ignore_index,
            channels=ref.channels,
            cache=False,
        )
        desc, labelled = f"val_data: {recorded_path(val_data)} ({len(ds)} images)", True
        labelled_pixels = ds.labelled_pixels
    else:
        if images < 1:
            raise InputError(f"parity needs at least 1 image; got {images}")
        ds, desc, labelled = SyntheticDataset(images, img_size), f"synthetic ({images} images)", False

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for start in range(0, len(ds), batch_size):
            items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
            imgs = _to_channels(np.stack([img for img, _ in items]), ref.channels, ref.color_order)
            yield imgs, (np.stack([m for _, m in items]) if labelled else None)

    return ParityInputs(desc, len(ds), batches(), labelled_pixels)


def measure_parity(
    ref: Reference,
    artifact: str | os.PathLike[str],
    *,
    target: str,
    precision: str,
    img_size: tuple[int, int],
    val_data: str | os.PathLike[str] | None = None,
    images: int = 8,
    class_names: Sequence[str] | None = None,
) -> ParityReport:
    """Compare `artifact` (a file of `target`) with the reference model on the same inputs at
    `img_size` (width, height); `class_names` name the classes of the per-class figures."""

    start = time.perf_counter()
    size = (int(img_size[0]), int(img_size[1]))
    classes = ref.classes
    inputs = parity_batches(ref, size, val_data=val_data, images=images)
    vs_torch = ConfusionMatrix(classes)
    gt_torch = ConfusionMatrix(classes, ref.ignore_index)
    gt_artifact = ConfusionMatrix(classes, ref.ignore_index)
    per_class = ClassParity(classes, ref.ignore_index)
    max_diff, diff_sum, values = 0.0, 0.0, 0
    with parity_backend(target, artifact) as backend:  # loaded once for every batch
        runtime, executed = backend.description, backend.executed_precision
        for imgs, masks in inputs.batches:
            x = normalize(imgs, ref.mean, ref.std)
            expected = ref.run(x)
            out = _logits(backend, x, _frame_order(imgs, ref.color_order))
            if out.shape != expected.shape:
                raise EdgesegRuntimeError(
                    f"'{artifact}' returned shape {out.shape}; {ref.label} gives {expected.shape}"
                )
            # Every comparison with NaN is False: unchecked, NaN logits would read as "no difference".
            require_finite(expected, f"the logits of {ref.label} (the reference)")
            require_finite(out, f"the logits of '{artifact}'")
            diff = np.abs(out.astype(np.float32) - expected)
            max_diff = max(max_diff, float(diff.max()))
            diff_sum, values = diff_sum + float(diff.sum()), values + diff.size
            ref_mask, out_mask = expected.argmax(1), out.argmax(1)
            vs_torch.update(out_mask, ref_mask)
            if masks is not None:
                gt_torch.update(ref_mask, masks)
                gt_artifact.update(out_mask, masks)
            per_class.update(ref_mask, out_mask, masks)
    # Every figure goes through the one evidence check (edgeseg._evidence): a parity report whose
    # figures stand on too few pixels, or are not finite, is refused rather than written.
    vs_ref = vs_torch.checked(
        f"of '{Path(artifact).name}' vs {ref.label}", "pixels compared", hint="give more parity images"
    )
    labelled = val_data is not None
    truth: list[float | None] = [None, None]
    if labelled:
        for i, (cm, who) in enumerate(((gt_torch, ref.label), (gt_artifact, f"'{Path(artifact).name}'"))):
            truth[i] = cm.checked(
                f"of {who} vs the truth of --val-data '{val_data}'",
                "labelled pixels",
                data_pixels=inputs.labelled_pixels,
                hint=labelled_hint(ref.ignore_index),
            ).miou
    detail = per_class.report(class_names)
    worst = (detail["worst"] or [{}])[0]
    report = ParityReport(
        target=target,
        precision=precision,
        runtime=runtime,
        inputs=inputs.desc,
        images=inputs.count,
        img_size=size,
        max_abs_logit_diff=max_diff,
        mean_abs_logit_diff=diff_sum / max(values, 1),
        pixel_agreement=vs_ref.pixel_accuracy,
        miou_vs_pytorch=vs_ref.miou,
        miou_pytorch_vs_gt=truth[0],
        miou_artifact_vs_gt=truth[1],
        seconds=round(time.perf_counter() - start, 3),
        reference=ref.label,
        worst_class=worst.get("class"),
        worst_class_drop_points=worst.get("drop_points"),
        boundary_f_vs_pytorch=detail["boundary_f_vs_pytorch"],
        classes=detail,
        executed_precision=executed,
        output="probabilities" if ref.probabilities else "logits",
    )
    for name in ("max_abs_logit_diff", "mean_abs_logit_diff"):
        require_finite(getattr(report, name), f"parity figure {name} of '{artifact}'")
    return report

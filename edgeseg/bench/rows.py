"""The benchmark's rows: what one row holds, the baseline (reference) row, the images and the frame
every row is measured on, loading a row's `Segmenter`, scoring its masks, and the figures relative to
the baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeseg._guards import recorded_path, require_finite
from edgeseg.bench.hardware import RssSampler
from edgeseg.errors import InputError, first_line
from edgeseg.formats import get_target

if TYPE_CHECKING:
    from edgeseg.bench.run import BenchmarkConfig
    from edgeseg.exporters.source import ExportSource

__all__ = [
    "BenchRow",
    "BenchmarkReport",
    "Labelled",
    "check_figures",
    "eager_call",
    "eval_set",
    "load_row",
    "reference_row",
    "relative_figures",
    "score_row",
    "segmenter_options",
    "timing_frame",
    "to_channels",
]


class Labelled(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class BenchRow:
    """One line of the table; figures are None when not measured (status other than "ok", or no data)."""

    name: str
    target: str
    precision: str
    backend: str | None = None
    reference: bool = False  # the baseline row: the source's own FP32 model on its own runtime
    status: str = "ok"  # "ok" | "export failed" | "not available"
    reason: str | None = None
    path: str | None = None
    size_mb: float | None = None
    miou: float | None = None
    miou_drop: float | None = None  # points lost vs PyTorch on the same data
    agreement: float | None = None  # fraction of pixels whose class equals PyTorch's
    model_ms_p50: float | None = None
    model_ms_p95: float | None = None
    total_ms_p50: float | None = None
    total_ms_p95: float | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)  # mean pre/infer/post of the call
    fps: float | None = None  # whole Segmenter calls per second (p50)
    images_per_s: float | None = None  # throughput mode: frames per second of predict_many
    throughput_reason: str | None = None  # why images_per_s is missing on a row that ran
    speedup: float | None = None  # PyTorch model p50 / this model p50
    gflops: float | None = None  # model MACs x 2 / model p50
    ceiling_share: float | None = None  # gflops / the measured ceiling of its precision, in (0, 1]
    peak_mem_mb: float | None = None  # RSS peak above the level before loading


@dataclass
class BenchmarkReport:
    """The rows (PyTorch first) and what they were measured on."""

    rows: list[BenchRow]
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"meta": self.meta, "rows": [asdict(r) for r in self.rows]}

    def row(self, name: str) -> BenchRow:
        """The row called `name` ("pytorch", "source onnx" or "target:precision")."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def score_row(
    row: BenchRow,
    masks: list[np.ndarray],
    ref_masks: list[np.ndarray],
    truth: list[np.ndarray],
    classes: int,
    ignore_index: int | None,
) -> None:
    """Pixel agreement with the baseline's masks and, with ground truth, mIoU."""
    from edgeseg.evaluation.metrics import ConfusionMatrix, mask_agreement

    if masks:
        row.agreement = round(mask_agreement(np.stack(masks), np.stack(ref_masks)), 6)
    if truth:
        cm = ConfusionMatrix(classes, ignore_index)
        for m, t in zip(masks, truth, strict=True):
            cm.update(m, t)
        row.miou = round(cm.compute().miou, 6)


def relative_figures(rows: list[BenchRow], macs: int | None) -> None:
    """mIoU drop and speed-up against the baseline (the first row), GFLOP/s from the MACs."""
    base = rows[0]
    for row in rows:
        if row.miou is not None and base.miou is not None:
            row.miou_drop = round((base.miou - row.miou) * 100, 3)
        if row.model_ms_p50:
            if macs:
                row.gflops = float(f"{2 * macs / row.model_ms_p50 / 1e6:.4g}")  # 4 digits: tiny models too
            if base.model_ms_p50:
                row.speedup = round(base.model_ms_p50 / row.model_ms_p50, 3)


def check_figures(rows: list[BenchRow]) -> None:
    """Every figure of every row is a finite number (or absent): a NaN would print as a figure and
    compare as neither better nor worse than another row."""
    from dataclasses import fields

    for row in rows:
        for f in fields(row):
            value = getattr(row, f.name)
            values = value.values() if isinstance(value, dict) else [value]
            for v in values:
                if isinstance(v, float):
                    require_finite(v, f"benchmark figure {f.name} of row {row.name}")


def reference_row(src: ExportSource) -> BenchRow:
    """The baseline row: the source itself on its reference runtime (PyTorch for a checkpoint)."""
    name = "pytorch" if src.reference_backend == "torch" else f"source {src.kind}"
    target = "pytorch" if src.reference_backend == "torch" else src.kind
    row = BenchRow(name, target, "fp32", backend=src.reference_backend, reference=True, path=str(src.path))
    row.size_mb = round(src.path.stat().st_size / 1e6, 2)
    return row


def eval_set(
    src: ExportSource, size: tuple[int, int], config: BenchmarkConfig, dataset: Labelled | None
) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """RGB images at the model's size, their masks (empty without labels) and a description."""
    if dataset is None and config.data:
        from edgeseg.data import FolderDataset

        dataset = FolderDataset(
            config.data,
            img_size=size,
            num_classes=src.classes,
            ignore_index=src.ignore_index,
            channels=src.channels,
        )
        kind = f"folder {recorded_path(config.data)}"
    elif dataset is not None:
        kind = f"{type(dataset).__name__} (ground truth)"
    else:
        from edgeseg.data import SyntheticDataset

        synth = SyntheticDataset(min(config.max_images, 16), size, seed=1234)
        imgs = [to_channels(synth[i][0], src.channels) for i in range(len(synth))]
        return imgs, [], "synthetic frames (agreement with the baseline only; no ground truth for this model)"
    n = min(len(dataset), config.max_images)
    if n == 0:
        raise InputError(f"the benchmark data ({kind}) holds no images")
    pairs = [dataset[i] for i in range(n)]
    return [img for img, _ in pairs], [mask for _, mask in pairs], f"{kind}: {n} images"


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and img.ndim == 3 and img.shape[2] == 3:
        from edgeseg.data.imageio import rgb_to_gray  # the luma training and Segmenter use

        return rgb_to_gray(img)
    return img


def timing_frame(channels: int, size: tuple[int, int]) -> np.ndarray:
    """A camera-sized RGB (or gray) frame of `size` (width, height) for the whole-call timing."""
    from edgeseg.data.synthetic import render_scene

    rgb, _ = render_scene(np.random.default_rng(7), size)
    return to_channels(rgb, channels)


def segmenter_options(
    row: BenchRow, size: tuple[int, int], src: ExportSource, resize_kernel: str
) -> dict[str, Any]:
    """The Segmenter arguments of a row beyond its model: the baseline's preprocessing (a bundle
    carries its own) and the run's resize kernel; the latency and throughput timings share them."""
    extra = src.segmenter_options(size) if row.reference else {}
    return {**extra, "resize_kernel": resize_kernel}


def load_row(row: BenchRow, size: tuple[int, int], src: ExportSource, resize_kernel: str) -> Any:
    from edgeseg.segmenter import Segmenter

    assert row.path is not None
    # Each row runs on its own target's runtime (an ONNX bundle on ONNX Runtime, not on OpenVINO),
    # so the row measures what its name says; the baseline on the source's reference runtime.
    backend = row.backend if row.reference else get_target(row.target).backends[0]
    kwargs = segmenter_options(row, size, src, resize_kernel)
    with RssSampler() as mem:
        try:
            seg = Segmenter(row.path, backend=backend, input_format="rgb", **kwargs)
        except Exception as exc:  # a row that cannot load here keeps its place with the reason
            row.status, row.reason = "not available", first_line(exc)
            return None
        seg.warmup(2)
    row.peak_mem_mb = mem.growth_mb
    row.backend = seg.backend_name
    if not row.reference:
        files = seg.manifest.files if seg.manifest is not None else {}
        row.size_mb = round(sum((Path(row.path) / f).stat().st_size for f in files) / 1e6, 2)
    return seg


def eager_call(model: Any, size: tuple[int, int], channels: int) -> Callable[[], object]:
    """`model(x)` with batch 1, no grad: the baseline most users measure."""
    import torch

    x = torch.zeros(1, channels, size[1], size[0])

    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call

"""The benchmark's rows: what one row holds, the baseline (reference) row, the images and the frame
every row is measured on, loading a row's `Segmenter`, scoring its masks, and the figures relative to
the baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeseg._evidence import labelled_hint
from edgeseg._guards import recorded_path, require_finite
from edgeseg.bench.hardware import RssSampler
from edgeseg.bench.precision import compute_precision
from edgeseg.data import FolderDataset, SyntheticDataset
from edgeseg.data.imageio import rgb_to_gray  # the luma training and Segmenter use
from edgeseg.data.synthetic import render_scene
from edgeseg.errors import InputError, first_line
from edgeseg.evaluation.classwise import ClassParity
from edgeseg.evaluation.metrics import ConfusionMatrix
from edgeseg.formats import get_target
from edgeseg.segmenter import Segmenter

if TYPE_CHECKING:
    from edgeseg.bench.config import BenchmarkConfig
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
    "runtime_precision_rows",
    "score_row",
    "segmenter_options",
    "share_fp32_bundles",
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
    runs_source: bool = False  # runs the source file itself (the baseline, pytorch:bf16)
    backend_options: dict[str, Any] = field(default_factory=dict)  # e.g. a run-time precision
    status: str = "ok"  # "ok" | "export failed" | "not available"
    reason: str | None = None
    path: str | None = None
    reused: bool = False  # the bundle at `path` was found with the same reuse key, not exported now
    size_mb: float | None = None
    miou: float | None = None
    miou_drop: float | None = None  # points lost vs PyTorch on the same data
    agreement: float | None = None  # fraction of pixels whose class equals PyTorch's
    # With ground truth: IoU points each judged class lost vs the baseline (edgeseg.evaluation.
    # classwise), and the worst of them; without: the lowest per-class IoU against the baseline.
    class_drops: dict[str, float] = field(default_factory=dict)
    worst_class: str | None = None
    worst_class_drop: float | None = None
    worst_class_iou_vs_baseline: float | None = None
    # What the runtime computed the row's model in, read back from it (Backend.executed_precision):
    # "fp32", "int8+fp32", "fp32 (fp16 weights upcast)", ...
    executed_precision: str | None = None
    ceiling_precision: str | None = None  # the ceiling this row is measured against
    model_ms_p50: float | None = None
    model_ms_p95: float | None = None
    total_ms_p50: float | None = None
    total_ms_p95: float | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)  # mean pre/infer/post of the call
    fps: float | None = None  # whole Segmenter calls per second (p50)
    images_per_s: float | None = None  # throughput mode: frames per second of predict_many
    throughput_reason: str | None = None  # why images_per_s is missing on a row that ran
    call_model: float | None = None  # call p50 / model p50: what pre/post adds to the network
    speedup: float | None = None  # the reference's model p50 (best PyTorch FP32 layout) / this one's
    speedup_bf16: float | None = None  # pytorch:bf16's model p50 / this one's (where that row ran)
    gflops: float | None = None  # model MACs x 2 / model p50
    ceiling_share: float | None = None  # gflops / the ceiling of its executed precision, below 1
    peak_mem_mb: float | None = None  # RSS peak above the level before loading
    # Relative spread of each ratio over the timing rounds: (max - min) / 2 / the ratio, e.g. 0.03
    # for +-3 %; keys speedup, speedup_bf16, ceiling_share, call_model, model_ms, total_ms.
    spreads: dict[str, float] = field(default_factory=dict)


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
    class_names: tuple[str, ...],
    src: ExportSource,
    labelled_pixels: int | None,
    data_kind: str,
) -> None:
    """Pixel agreement with the baseline's masks, per-class parity (edgeseg.evaluation.classwise)
    and, with ground truth, mIoU and each judged class's drop: agreement and mIoU each through the
    evidence check (edgeseg._evidence), so a row never shows a figure measured on too little."""

    if not masks:
        return
    classes, ignore = src.classes, src.ignore_index
    vs = ConfusionMatrix(classes)
    for m, r in zip(masks, ref_masks, strict=True):
        vs.update(m, r)
    figure = f"of benchmark row {row.name} vs the baseline"
    row.agreement = round(vs.checked(figure, "pixels compared", hint="give more images").pixel_accuracy, 6)
    parity = ClassParity(classes, ignore)
    for i, mask in enumerate(masks):
        parity.update(ref_masks[i][None], mask[None], truth[i][None] if truth else None)
    worst = parity.report(class_names).get("worst") or []
    if truth:
        cm = ConfusionMatrix(classes, ignore)
        for m, t in zip(masks, truth, strict=True):
            cm.update(m, t)
        where = f"of benchmark row {row.name} on {data_kind}"
        hint = labelled_hint(ignore)
        row.miou = round(cm.checked(where, "labelled pixels", data_pixels=labelled_pixels, hint=hint).miou, 6)
        drops, judged = parity.drops()
        row.class_drops = {class_names[c]: round(float(drops[c]), 3) for c in np.flatnonzero(judged)}
        if worst:
            row.worst_class, row.worst_class_drop = worst[0]["class"], round(worst[0]["drop_points"], 3)
    elif worst and worst[0].get("iou_vs_pytorch") is not None:
        row.worst_class, row.worst_class_iou_vs_baseline = worst[0]["class"], worst[0]["iou_vs_pytorch"]


def relative_figures(rows: list[BenchRow], macs: int | None, reference_ms: float | None) -> None:
    """mIoU drop against the baseline (the first row), speed-ups against `reference_ms` (the best
    PyTorch FP32 layout, else the baseline row's model p50) and against pytorch:bf16 where it ran,
    call/model, GFLOP/s from the MACs."""
    base = rows[0]
    reference_ms = reference_ms or base.model_ms_p50
    bf16 = next((r for r in rows if r.runs_source and r.precision == "bf16" and r.model_ms_p50), None)
    for row in rows:
        if row.miou is not None and base.miou is not None:
            row.miou_drop = round((base.miou - row.miou) * 100, 3)
        if row.model_ms_p50:
            if macs:
                row.gflops = float(f"{2 * macs / row.model_ms_p50 / 1e6:.4g}")  # 4 digits: tiny models too
            if reference_ms:
                row.speedup = round(reference_ms / row.model_ms_p50, 3)
            if bf16 is not None and bf16.model_ms_p50:
                row.speedup_bf16 = round(bf16.model_ms_p50 / row.model_ms_p50, 3)
            if row.total_ms_p50:
                row.call_model = round(row.total_ms_p50 / row.model_ms_p50, 3)


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
    row = BenchRow(
        name,
        target,
        "fp32",
        backend=src.reference_backend,
        reference=True,
        runs_source=True,
        path=str(src.path),
    )
    row.size_mb = round(src.stored_bytes() / 1e6, 2)
    return row


def eval_set(
    src: ExportSource, size: tuple[int, int], config: BenchmarkConfig, dataset: Labelled | None
) -> tuple[list[np.ndarray], list[np.ndarray], str, int | None]:
    """RGB images at the model's size, their masks (empty without labels), a description and the
    labelled pixels in the data's own mask files (None when not known)."""
    labelled_pixels = None
    if dataset is None and config.data:
        folder = FolderDataset(
            config.data,
            img_size=size,
            num_classes=src.model_classes(),
            ignore_index=src.ignore_index,
            channels=src.channels,
        )
        dataset, kind = folder, f"folder {recorded_path(config.data)}"
        labelled_pixels = sum(folder.labelled_per_image[: config.max_images])  # of the images scored
    elif dataset is not None:
        kind = f"{type(dataset).__name__} (ground truth)"
    else:
        synth = SyntheticDataset(min(config.max_images, 16), size, seed=1234)
        imgs = [to_channels(synth[i][0], src.channels) for i in range(len(synth))]
        kind = "synthetic frames (agreement with the baseline only; no ground truth for this model)"
        return imgs, [], kind, None
    n = min(len(dataset), config.max_images)
    if n == 0:
        raise InputError(f"the benchmark data ({kind}) holds no images")
    pairs = [dataset[i] for i in range(n)]
    return [img for img, _ in pairs], [mask for _, mask in pairs], f"{kind}: {n} images", labelled_pixels


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and img.ndim == 3 and img.shape[2] == 3:
        return rgb_to_gray(img)
    return img


def timing_frame(channels: int, size: tuple[int, int]) -> np.ndarray:
    """A camera-sized RGB (or gray) frame of `size` (width, height) for the whole-call timing."""

    rgb, _ = render_scene(np.random.default_rng(7), size)
    return to_channels(rgb, channels)


def segmenter_options(
    row: BenchRow, size: tuple[int, int], src: ExportSource, resize_kernel: str
) -> dict[str, Any]:
    """The Segmenter arguments of a row beyond its model: the baseline's preprocessing (for rows that
    run the source file; a bundle carries its own), the row's backend options (a run-time precision)
    and the run's resize kernel; the latency and throughput timings share them."""
    extra = src.segmenter_options(size) if row.runs_source else {}
    return {**extra, **row.backend_options, "resize_kernel": resize_kernel}


def load_row(row: BenchRow, size: tuple[int, int], src: ExportSource, resize_kernel: str) -> Any:
    """The row's Segmenter, warmed up, with its memory growth, backend and executed precision set;
    None (the row's status and reason set) when it cannot load here."""

    assert row.path is not None
    # Each row runs on its own target's runtime (an ONNX bundle on ONNX Runtime, not on OpenVINO),
    # so the row measures what its name says; rows of the source on the source's reference runtime.
    backend = row.backend if row.runs_source else get_target(row.target).backends[0]
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
    row.executed_precision = seg.backend.executed_precision
    row.ceiling_precision = compute_precision(row.executed_precision, row.precision)
    if not row.runs_source:
        files = seg.manifest.files if seg.manifest is not None else {}
        row.size_mb = round(sum((Path(row.path) / f).stat().st_size for f in files) / 1e6, 2)
    return seg


def runtime_precision_rows(rows: list[BenchRow], src: ExportSource, native: frozenset[str]) -> list[BenchRow]:
    """`rows` with the rows of the run-time precisions this CPU computes natively (`native`, e.g.
    {"bf16"}) added: pytorch:bf16 after a PyTorch baseline (torch.autocast, channels-last), and
    `<target>:bf16` after every `<target>:fp32` whose runtime computes its fp32 bundle at bf16 when
    asked (the descriptor's `runtime_precisions`); they take the fp32 row's bundle once exported."""
    out: list[BenchRow] = []
    for row in rows:
        out.append(row)
        if row.reference and src.reference_backend == "torch" and "bf16" in native:
            out.append(
                BenchRow("pytorch:bf16", row.target, "bf16", backend=row.backend, runs_source=True,
                         path=row.path, size_mb=row.size_mb, backend_options={"autocast": "bf16"})
            )  # fmt: skip
        if row.reference or row.precision != "fp32":
            continue
        for precision, options in get_target(row.target).runtime_precisions.items():
            if precision in native:
                out.append(BenchRow(f"{row.target}:{precision}", row.target, precision,
                                    backend_options=dict(options)))  # fmt: skip
    return out


def share_fp32_bundles(rows: list[BenchRow]) -> None:
    """Give every run-time precision row its target's fp32 bundle (or that row's failure)."""
    fp32 = {r.target: r for r in rows if r.precision == "fp32" and not r.runs_source}
    for row in rows:
        if row.backend_options and not row.runs_source and row.target in fp32:
            base = fp32[row.target]
            row.path, row.status, row.reason = base.path, base.status, base.reason


def eager_call(model: Any, size: tuple[int, int], channels: int) -> Callable[[], object]:
    """`model(x)` with batch 1, no grad, default contiguous layout: the baseline most users measure."""
    import torch

    x = torch.zeros(1, channels, size[1], size[0])

    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call

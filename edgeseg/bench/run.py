"""`edgeseg benchmark`: every target and precision side by side with the FP32 baseline.

The baseline (the first row, `BenchRow.reference`) is the export source's own FP32 model: the
checkpoint on PyTorch, or an ONNX file from elsewhere on ONNX Runtime (edgeseg.exporters.source).
For the source and each requested target:precision the benchmark exports what is missing (an
existing bundle is reused only when it is intact and its recorded reuse key, derived from every
setting that shaped it and the content of its source and data, equals the key of this run's
export: edgeseg.exporters.export_settings), loads it through `Segmenter` exactly as
an application would, and measures: size, mIoU vs ground truth and its drop vs the baseline (with
labelled data), per-class drops, pixel agreement with the baseline's masks, the precision the kernels
ran at, latency of the model alone and of the whole `Segmenter` call, FPS, speed-up vs the faster
PyTorch FP32 layout (and vs pytorch:bf16 on CPUs with native bf16, where bf16 rows are added),
achieved GFLOP/s and its share of the measured ceiling, and peak memory. A row that cannot be
measured here keeps its place in the table with the reason (export failed / not available here).

Timing rounds are interleaved across rows and the ceiling probes, so machine noise (another
process, thermal changes) hits every row alike, and repeated until the ratios are stable
(edgeseg.bench.rounds); the load during them is recorded (edgeseg.bench.load). (The module is not called
`benchmark` because that would shadow the `edgeseg.benchmark` function on the package.)
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._guards import check_number, recorded_path
from edgeseg.bench.config import BenchmarkConfig
from edgeseg.bench.rows import (
    BenchmarkReport,
    BenchRow,
    Labelled,
    check_figures,
    eager_call,
    eval_set,
    load_row,
    reference_row,
    relative_figures,
    runtime_precision_rows,
    score_row,
    segmenter_options,
    share_fp32_bundles,
    timing_frame,
)
from edgeseg.errors import InputError
from edgeseg.formats import PRECISIONS, TARGETS, parse_precision

if TYPE_CHECKING:
    from edgeseg.exporters.source import SourceFacts

__all__ = ["BenchRow", "BenchmarkConfig", "BenchmarkReport", "benchmark", "parse_targets"]


def parse_targets(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """ "onnx:fp32,openvino:int8" (or "all", or a bare target meaning all its precisions) ->
    ("onnx:fp32", "openvino:int8"); None (nothing asked) -> every target. InputError naming the bad
    entry, and for a value that names no target at all ("", ","): an empty choice is a mistake (a
    variable that came out empty), never a way to say "all"."""
    if spec is None:
        spec = "all"
    items = [spec] if isinstance(spec, str) else list(spec)
    parts = [p.strip().lower() for item in items for p in str(item).split(",") if p.strip()]
    if not parts:
        raise InputError(
            f"--targets {str(spec)!r} names no target; give target:precision entries (e.g. "
            "onnx:fp32,openvino:int8), a bare target, or all"
        )
    out: list[str] = []
    for part in parts:
        if part == "all":
            names = [f"{t.name}:{p}" for t in TARGETS.values() for p in _known(t.name)]
        else:
            name, _, prec = part.partition(":")
            if name not in TARGETS:
                raise InputError(f"unknown target '{name}' in --targets; choose from {', '.join(TARGETS)}")
            precs = [parse_precision(prec, f"in --targets '{part}'")] if prec else _known(name)
            names = [f"{name}:{p}" for p in precs]
        out += [n for n in names if n not in out]
    return tuple(out)


def _known(target: str) -> list[str]:
    t = TARGETS[target]
    return [p for p in PRECISIONS if p in (*t.precisions, *t.planned)]


def benchmark(
    checkpoint: str | os.PathLike[str],
    config: BenchmarkConfig | None = None,
    *,
    dataset: Labelled | None = None,
    facts: SourceFacts | None = None,
    log: Callable[[str], None] | None = None,
) -> BenchmarkReport:
    """Export (where missing) and measure every requested target against the source's FP32 model.

    `checkpoint` is an edgeseg checkpoint (baseline: PyTorch) or a `.onnx` file (baseline: that file
    on ONNX Runtime; `facts` as for edgeseg.exporters.export). `dataset` (anything indexable giving
    (RGB image, mask) at the model's size) replaces `config.data`, e.g. a SyntheticDataset for a model
    trained on it. `log` receives progress lines. Raises InputError for bad options or a bad
    source/data folder; a target that fails to export or load becomes a row with its reason instead
    of an error.
    """
    import torch

    from edgeseg.bench.ceilings import Ceilings, apply_ceilings
    from edgeseg.bench.hardware import ClockSampler, count_macs, native_precisions
    from edgeseg.bench.load import LoadMonitor
    from edgeseg.bench.reuse import export_row
    from edgeseg.bench.rounds import time_rows
    from edgeseg.exporters.source_open import open_export_source

    config = config or BenchmarkConfig()
    say = log or (lambda _: None)
    _check_config(config)
    targets = parse_targets(config.targets)
    ckpt_path = Path(checkpoint)
    src = open_export_source(ckpt_path, facts)
    size = src.export_size(config.img_size, dynamic=False)
    if config.data and dataset is None and not Path(config.data).is_dir():
        raise InputError(f"--data folder '{config.data}' does not exist (expected DIR/images and DIR/masks)")
    from edgeseg.exporters import check_data

    data = config.data if dataset is None else None
    check_data(src, size, val_data=data, calib=config.calib, data_flag="--data")
    out = Path(config.out) if config.out else ckpt_path.parent / "benchmark"
    if config.threads:
        torch.set_num_threads(config.threads)

    images, truth, data_kind, labelled_pixels = eval_set(src, size, config, dataset)
    # A user's own loop runs `model(x)` on the default (contiguous) layout; edgeseg's PyTorch row uses
    # channels-last, which is faster on most CPUs; the reference is the faster of the two, timed in
    # the same rounds. The MACs are counted on the same module (an ONNX source has none).
    eager = src.torch_module()
    macs = count_macs(eager, size, src.channels) if eager is not None else None
    rows = [reference_row(src)] + [BenchRow(t, *t.split(":")) for t in targets]
    rows = runtime_precision_rows(rows, src, native_precisions())
    for row in rows[1:]:
        if not (row.runs_source or row.backend_options):  # those run the source or an fp32 bundle
            export_row(row, src, size, config, out / "bundles", say)
    share_fp32_bundles(rows)

    segs: dict[str, Any] = {}
    frame = timing_frame(src.channels, config.frame_size)
    ref_masks: list[np.ndarray] | None = None
    clock = ClockSampler()
    monitor: LoadMonitor | None = None
    try:
        for row in rows:
            if row.status != "ok":
                continue
            say(f"loading {row.name}")
            seg = load_row(row, size, src, config.resize_kernel)
            if seg is None:
                continue
            segs[row.name] = seg
            masks = [r.mask for r in seg.predict_batch(images)] if images else []
            if ref_masks is None:
                ref_masks = masks
            score_row(row, masks, ref_masks, truth, seg.class_names, src, labelled_pixels, data_kind)
        ceilings = None
        if config.ceiling_seconds > 0:
            say("building this machine's ceiling probes per precision (chained convolutions)")
            ran = {r.ceiling_precision for r in rows if r.name in segs and r.ceiling_precision}
            ceilings = Ceilings(ran, config.ceiling_seconds)
        call = eager_call(eager, size, src.channels) if eager is not None else None

        monitor = LoadMonitor()  # from here: the load during the rounds, not during loading

        def on_round() -> None:
            assert monitor is not None
            monitor.sample()
            clock.sample()

        timing = time_rows(rows, segs, frame, config, say, call, ceilings, macs, on_round)
        if config.mode == "throughput":
            from edgeseg._cpu import usable_cores
            from edgeseg.bench.throughput import measure_throughput

            def options(row: BenchRow) -> dict[str, Any]:
                return segmenter_options(row, size, src, config.resize_kernel)

            measure_throughput(rows, frame, max(config.runs, 4 * usable_cores()), options, say)
    finally:
        for seg in segs.values():
            seg.close()

    base = rows[0]
    layouts = _pytorch_fp32(timing) if eager is not None else None
    relative_figures(rows, macs, layouts["ms_p50"] if layouts else None)
    meta = _meta(ckpt_path, size, macs, data_kind, len(images), config, clock.ghz)
    meta["reference"] = f"{base.name}: {src.reference_label} ({base.backend})"
    meta["pytorch_fp32"] = layouts
    meta["eager_contiguous_ms_p50"] = timing["eager_contiguous_ms_p50"]
    meta["rounds_run"] = timing
    meta["load"] = monitor.summary().to_dict() if monitor is not None else None
    # The card's record of what ran: a precision a runtime picked on this CPU shows when cards compare.
    meta["executed_precision"] = {r.name: r.executed_precision for r in rows if r.executed_precision}
    meta["out"] = recorded_path(out)
    if ceilings is not None:
        meta["ceilings"] = ceilings.to_meta()
        apply_ceilings(rows, meta["ceilings"])
    check_figures(rows)
    return BenchmarkReport(rows, meta)


def _pytorch_fp32(timing: dict[str, Any]) -> dict[str, Any] | None:
    """The speed-up reference of a PyTorch source: the faster of its channels-last run (the baseline
    row) and the plain contiguous `model(x)`, both timed in the same rounds."""
    last, contiguous = timing["baseline_ms_p50"], timing["eager_contiguous_ms_p50"]
    if not last or not contiguous:
        return None
    layout = "channels-last" if last <= contiguous else "contiguous"
    return {
        "channels_last_ms_p50": last,
        "contiguous_ms_p50": contiguous,
        "reference": layout,
        "ms_p50": min(last, contiguous),
    }


def _check_config(config: BenchmarkConfig) -> None:
    if config.cpu_ghz is not None:
        check_number(config.cpu_ghz, "--cpu-ghz", minimum=0.0, min_open=True)
    if config.mode not in ("latency", "throughput"):
        raise InputError(f"--mode must be latency or throughput; got '{config.mode}'")
    if config.runs < 1 or config.rounds < 1 or config.warmup < 0 or config.max_images < 1:
        raise InputError("--runs and --max-images must be at least 1 (and rounds/warm-up not negative)")
    check_number(config.max_spread, "--max-spread", minimum=0.0, min_open=True)
    check_number(config.time_budget_s, "--time-budget", minimum=0.0)
    if len(config.frame_size) != 2 or min(config.frame_size) < 1:
        raise InputError(f"--frame-size must be WxH with both sides >= 1; got {config.frame_size}")


def _meta(
    ckpt_path: Path,
    size: tuple[int, int],
    macs: int | None,
    data: str,
    images: int,
    config: BenchmarkConfig,
    measured_ghz: float | None = None,
) -> dict[str, Any]:
    import torch

    from edgeseg._version import __version__
    from edgeseg.bench.card import environment, run_record
    from edgeseg.bench.hardware import cpu_peak, sgemm_gflops

    peak = cpu_peak(config.cpu_ghz, measured_ghz)
    return {
        "edgeseg_version": __version__,
        **run_record(),  # the command line and git commit: the card says what produced it
        "environment": environment(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": recorded_path(ckpt_path),
        "img_size": list(size),
        "frame_size": list(config.frame_size),
        "resize_kernel": config.resize_kernel,
        "mode": config.mode,
        "data": data,
        "images": images,
        "runs": config.runs,
        "rounds": config.rounds,
        "macs": macs,
        "torch_threads": torch.get_num_threads(),
        "cpu_peak": peak.to_dict(),
        "sgemm_gflops": round(sgemm_gflops(), 1),
        "timing": "model: backend.infer on one preprocessed 1xCxHxW input; total: Segmenter call on a "
        f"{config.frame_size[0]}x{config.frame_size[1]} frame (pre + infer + post, the frame resized by "
        f"{config.resize_kernel}); rounds interleaved across rows and the ceiling probes",
    }

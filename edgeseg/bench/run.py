"""`edgeseg benchmark`: every target and precision side by side with the FP32 baseline.

The baseline (the first row, `BenchRow.reference`) is the export source's own FP32 model: the
checkpoint on PyTorch, or an ONNX file from elsewhere on ONNX Runtime (edgeseg.exporters.source).
For the source and each requested target:precision the benchmark exports what is missing (an
existing bundle is reused only when it is intact and its recorded reuse key, derived from every
setting that shaped it and the content of its source and data, equals the key of this run's
export: edgeseg.exporters.export_settings), loads it through `Segmenter` exactly as
an application would, and measures: size, mIoU vs ground truth and its drop vs the baseline (with
labelled data), pixel agreement with the baseline's masks, latency of the model alone and of the whole
`Segmenter` call, FPS, speed-up vs PyTorch, achieved GFLOP/s and peak memory. A row that cannot be
measured here keeps its place in the table with the reason (export failed / not available here).

Timing rounds are interleaved across rows, so machine noise (another process, thermal changes)
hits every row alike and the ratios stay meaningful on a busy laptop. (The module is not called
`benchmark` because that would shadow the `edgeseg.benchmark` function on the package.)
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeseg._guards import check_number, recorded_path, require_finite
from edgeseg.bench.hardware import RssSampler, percentile_ms
from edgeseg.errors import EdgesegError, InputError, MissingDependencyError, first_line
from edgeseg.formats import PRECISIONS, TARGETS, get_target, missing_packages, parse_precision
from edgeseg.runtimes.registry import ensure_installed

if TYPE_CHECKING:
    from edgeseg.exporters.source import ExportSource, SourceFacts

__all__ = ["BenchRow", "BenchmarkConfig", "BenchmarkReport", "benchmark", "parse_targets"]

FRAME_SIZE = (640, 480)  # the camera-sized frame the whole Segmenter call is timed on


class _Labelled(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...


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


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to benchmark and how.

    Attributes:
        targets: "target:precision" entries (see `parse_targets`); None means all (an empty list is
            refused).
        data: a labelled folder (images/ + masks/) for mIoU and agreement; default synthetic frames
            (agreement only: a model trained elsewhere has no ground truth on them).
        calib: calibration images for int8 exports (default: the exporter's, the checkpoint's
            training folder; see edgeseg.exporters.calibration).
        img_size: (width, height) of exported inputs; default the checkpoint's training size.
        runs: timed calls per row and per kind (model alone, whole Segmenter call).
        rounds: the runs are split into this many interleaved rounds.
        warmup: untimed calls per row before timing.
        max_images: data images scored per row (the first ones, in file order).
        out: folder for bundles and reports; default `<checkpoint folder>/benchmark`.
        threads: CPU threads for the PyTorch baseline (default: torch's own choice).
        cpu_ghz: the clock for the CPU's peak FP32 rate (default: the clock the OS reports, which
            on many machines is the base clock, below what the cores reach under load).
        frame_size: (width, height) of the frame the whole Segmenter call is timed on.
        ceiling_seconds: time per runtime and precision for the measured ceilings
            (edgeseg.bench.ceilings); 0 skips them.
        mode: "latency" (one frame at a time) or "throughput", which also measures every row's
            images per second with the runtime's own parallelism (edgeseg.bench.throughput).
        resize_kernel: the host-side frame resize of every row's Segmenter ("pillow" or "torch").
    """

    targets: tuple[str, ...] | None = None
    data: str | None = None
    calib: str | None = None
    img_size: tuple[int, int] | None = None
    runs: int = 30
    rounds: int = 3
    warmup: int = 5
    max_images: int = 64
    out: str | None = None
    threads: int | None = None
    cpu_ghz: float | None = None
    frame_size: tuple[int, int] = FRAME_SIZE
    ceiling_seconds: float = 1.0
    mode: str = "latency"
    resize_kernel: str = "pillow"


@dataclass
class BenchRow:
    """One line of the table; figures are None when not measured (status other than "ok", or no data)."""

    name: str
    target: str
    precision: str
    backend: str | None = None
    # What the runtime computed the row's model in, read back from it (Backend.executed_precision):
    # "fp32", "int8+fp32", "fp32 (fp16 weights upcast)", ...
    executed_precision: str | None = None
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


def benchmark(
    checkpoint: str | os.PathLike[str],
    config: BenchmarkConfig | None = None,
    *,
    dataset: _Labelled | None = None,
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

    from edgeseg.bench.hardware import count_macs
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

    images, truth, data_kind, labelled_pixels = _eval_set(src, size, config, dataset)
    # A user's own loop runs `model(x)` on the default (contiguous) layout; edgeseg's PyTorch row uses
    # channels-last, which is faster on CPUs. Both are eager PyTorch; the report times both. The MACs
    # are counted on the same module (an ONNX source has none: no MACs, no GFLOP/s).
    eager = src.torch_module()
    macs = count_macs(eager, size, src.channels) if eager is not None else None
    rows = [_reference_row(src)]
    rows += [BenchRow(t, *t.split(":")) for t in targets]
    for row in rows[1:]:
        _export_row(row, src, size, config, out / "bundles", say)

    segs: dict[str, Any] = {}
    frame = _frame(src.channels, config.frame_size)
    ref_masks: list[np.ndarray] | None = None
    try:
        for row in rows:
            if row.status != "ok":
                continue
            say(f"loading {row.name}")
            seg = _load_row(row, size, src, config.resize_kernel)
            if seg is None:
                continue
            segs[row.name] = seg
            masks = [r.mask for r in seg.predict_batch(images)] if images else []
            if ref_masks is None:
                ref_masks = masks
            _score_row(row, masks, ref_masks, truth, src, labelled_pixels, data_kind)
        eager_call = _eager_call(eager, size, src.channels) if eager is not None else None
        eager_ms = _time_rows(rows, segs, frame, config, say, eager_call)
        if config.mode == "throughput":
            from edgeseg._cpu import usable_cores
            from edgeseg.bench.throughput import measure_throughput

            def options(row: BenchRow) -> dict[str, Any]:
                return _segmenter_options(row, size, src, config.resize_kernel)

            measure_throughput(rows, frame, max(config.runs, 4 * usable_cores()), options, say)
    finally:
        for seg in segs.values():
            seg.close()

    base = rows[0]
    _relative_figures(rows, macs)
    _check_figures(rows)
    meta = _meta(ckpt_path, size, macs, data_kind, len(images), config)
    meta["reference"] = f"{base.name}: {src.reference_label} ({base.backend})"
    # The card's record of what ran: a precision a runtime picked on this CPU shows when cards compare.
    meta["executed_precision"] = {r.name: r.executed_precision for r in rows if r.executed_precision}
    meta["eager_contiguous_ms_p50"] = eager_ms
    meta["out"] = recorded_path(out)
    if config.ceiling_seconds > 0:
        from edgeseg.bench.ceilings import apply_ceilings, measure_ceilings

        say("measuring this machine's ceilings per precision (1x1 convolutions)")
        meta["ceilings"] = measure_ceilings(config.ceiling_seconds)
        apply_ceilings(rows, meta["ceilings"])
    return BenchmarkReport(rows, meta)


def _check_config(config: BenchmarkConfig) -> None:
    if config.cpu_ghz is not None:
        check_number(config.cpu_ghz, "--cpu-ghz", minimum=0.0, min_open=True)
    if config.mode not in ("latency", "throughput"):
        raise InputError(f"--mode must be latency or throughput; got '{config.mode}'")
    if config.runs < 1 or config.rounds < 1 or config.warmup < 0 or config.max_images < 1:
        raise InputError("--runs and --max-images must be at least 1 (and rounds/warm-up not negative)")
    if len(config.frame_size) != 2 or min(config.frame_size) < 1:
        raise InputError(f"--frame-size must be WxH with both sides >= 1; got {config.frame_size}")


def _score_row(
    row: BenchRow,
    masks: list[np.ndarray],
    ref_masks: list[np.ndarray],
    truth: list[np.ndarray],
    src: ExportSource,
    labelled_pixels: int | None,
    data_kind: str,
) -> None:
    """Pixel agreement with the baseline's masks and, with ground truth, mIoU: each through the
    evidence check (edgeseg._evidence), so a row never shows a figure measured on too little."""
    from edgeseg._evidence import labelled_hint
    from edgeseg.evaluation.metrics import ConfusionMatrix

    classes, ignore = src.classes, src.ignore_index
    if masks:
        vs = ConfusionMatrix(classes)
        for m, r in zip(masks, ref_masks, strict=True):
            vs.update(m, r)
        figure = f"of benchmark row {row.name} vs the baseline"
        row.agreement = round(
            vs.checked(figure, "pixels compared", hint="give more images").pixel_accuracy, 6
        )
    if truth:
        cm = ConfusionMatrix(classes, ignore)
        for m, t in zip(masks, truth, strict=True):
            cm.update(m, t)
        where = f"of benchmark row {row.name} on {data_kind}"
        hint = labelled_hint(ignore)
        row.miou = round(cm.checked(where, "labelled pixels", data_pixels=labelled_pixels, hint=hint).miou, 6)


def _relative_figures(rows: list[BenchRow], macs: int | None) -> None:
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


def _check_figures(rows: list[BenchRow]) -> None:
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


def _reference_row(src: ExportSource) -> BenchRow:
    """The baseline row: the source itself on its reference runtime (PyTorch for a checkpoint)."""
    name = "pytorch" if src.reference_backend == "torch" else f"source {src.kind}"
    target = "pytorch" if src.reference_backend == "torch" else src.kind
    row = BenchRow(name, target, "fp32", backend=src.reference_backend, reference=True, path=str(src.path))
    row.size_mb = round(src.stored_bytes() / 1e6, 2)
    return row


def _eval_set(
    src: ExportSource, size: tuple[int, int], config: BenchmarkConfig, dataset: _Labelled | None
) -> tuple[list[np.ndarray], list[np.ndarray], str, int | None]:
    """RGB images at the model's size, their masks (empty without labels), a description and the
    labelled pixels in the data's own mask files (None when not known)."""
    labelled_pixels = None
    if dataset is None and config.data:
        from edgeseg.data import FolderDataset

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
        from edgeseg.data import SyntheticDataset

        synth = SyntheticDataset(min(config.max_images, 16), size, seed=1234)
        imgs = [_channels(synth[i][0], src.channels) for i in range(len(synth))]
        kind = "synthetic frames (agreement with the baseline only; no ground truth for this model)"
        return imgs, [], kind, None
    n = min(len(dataset), config.max_images)
    if n == 0:
        raise InputError(f"the benchmark data ({kind}) holds no images")
    pairs = [dataset[i] for i in range(n)]
    return [img for img, _ in pairs], [mask for _, mask in pairs], f"{kind}: {n} images", labelled_pixels


def _channels(img: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and img.ndim == 3 and img.shape[2] == 3:
        from edgeseg.data.imageio import rgb_to_gray  # the luma training and Segmenter use

        return rgb_to_gray(img)
    return img


def _frame(channels: int, size: tuple[int, int]) -> np.ndarray:
    """A camera-sized RGB (or gray) frame of `size` (width, height) for the whole-call timing."""
    from edgeseg.data.synthetic import render_scene

    rgb, _ = render_scene(np.random.default_rng(7), size)
    return _channels(rgb, channels)


def _export_row(
    row: BenchRow,
    src: ExportSource,
    size: tuple[int, int],
    config: BenchmarkConfig,
    bundles: Path,
    say: Callable[[str], None],
) -> None:
    """Find or make the bundle of `row`, or set its status and reason."""
    target = get_target(row.target)
    if row.precision not in target.precisions:
        row.status, row.reason = "not available", f"edgeseg cannot export {target.title} {row.precision} yet"
        return
    missing = missing_packages(target)
    if missing:
        extras = sorted({r.extra for r in target.requires if r.module in missing})
        row.status = "not available"
        row.reason = f"needs {', '.join(missing)} (pip install 'edgeseg[{','.join(extras)}]')"
        return
    try:
        ensure_installed(target.backends[0])
    except MissingDependencyError as err:  # nothing here could run the bundle: exporting costs time
        row.status, row.reason = "not available", first_line(err)
        return
    from edgeseg._reuse import reuse_key
    from edgeseg.exporters import ExportConfig, export, export_settings

    dest = bundles / f"{row.target}-{row.precision}-{size[0]}x{size[1]}"
    cfg = ExportConfig(
        target=row.target,
        precision=row.precision,
        img_size=size,
        out=str(dest),
        overwrite=True,
        calib=config.calib if row.precision == "int8" else None,
        parity_images=2,
    )
    try:
        if _reusable(dest, reuse_key(export_settings(src, cfg))):
            say(f"reusing {dest}")
            row.path = str(dest)
            return
        say(f"exporting {row.name}")
        row.path = str(export(src.path, cfg, facts=src.facts).bundle)
    except Exception as exc:  # a failed target is a row, not the end of the benchmark
        row.status, row.reason = "export failed", first_line(exc)


def _reusable(dest: Path, key: str) -> bool:
    """A bundle at `dest` that is intact (every file's sha256 as its manifest records) and was made
    with exactly the settings asked for now: same source content, calibration data, method, bounds,
    size, precision, ... (its recorded `source.reuse_key`, edgeseg.exporters.export_settings)."""
    if not (dest / "edgeseg.json").is_file():
        return False
    from edgeseg.manifest import read_manifest

    try:
        m = read_manifest(dest)
    except EdgesegError:
        return False
    return m.source.get("reuse_key") == key


def _segmenter_options(
    row: BenchRow, size: tuple[int, int], src: ExportSource, resize_kernel: str
) -> dict[str, Any]:
    """The Segmenter arguments of a row beyond its model: the baseline's preprocessing (a bundle
    carries its own) and the run's resize kernel; the latency and throughput timings share them."""
    extra = src.segmenter_options(size) if row.reference else {}
    return {**extra, "resize_kernel": resize_kernel}


def _load_row(row: BenchRow, size: tuple[int, int], src: ExportSource, resize_kernel: str) -> Any:
    from edgeseg.segmenter import Segmenter

    assert row.path is not None
    # Each row runs on its own target's runtime (an ONNX bundle on ONNX Runtime, not on OpenVINO),
    # so the row measures what its name says; the baseline on the source's reference runtime.
    backend = row.backend if row.reference else get_target(row.target).backends[0]
    kwargs = _segmenter_options(row, size, src, resize_kernel)
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
    if not row.reference:
        files = seg.manifest.files if seg.manifest is not None else {}
        row.size_mb = round(sum((Path(row.path) / f).stat().st_size for f in files) / 1e6, 2)
    return seg


def _time_rows(
    rows: list[BenchRow],
    segs: dict[str, Any],
    frame: np.ndarray,
    config: BenchmarkConfig,
    say: Callable[[str], None],
    eager: Callable[[], object] | None,
) -> float | None:
    """Model-alone and whole-call latency of every loaded row, in interleaved rounds. `eager` (a plain
    `model(x)` call, None for a source without a PyTorch module) is timed in the same rounds; returns
    its median in ms."""
    from edgeseg.preprocess import prepare_frame

    model: dict[str, list[float]] = {n: [] for n in segs}
    total: dict[str, list[float]] = {n: [] for n in segs}
    stages: dict[str, list[dict[str, float]]] = {n: [] for n in segs}
    calls: dict[str, Callable[[], object]] = {}
    for name, seg in segs.items():
        pre = seg.preprocessing
        x, _ = prepare_frame(frame, pre, "rgb")
        feed = {pre.input_name: x[None]}
        calls[name] = lambda b=seg.backend, feed=feed: b.infer(feed)
        for _ in range(config.warmup):
            calls[name]()
            seg(frame)
    eager_ms: list[float] = []
    for _ in range(config.warmup if eager else 0):
        eager()  # type: ignore[misc]
    per_round = max(1, -(-config.runs // config.rounds))
    for r in range(config.rounds):
        say(f"timing round {r + 1}/{config.rounds}")
        for _ in range(per_round if eager else 0):
            t0 = time.perf_counter()
            eager()  # type: ignore[misc]
            eager_ms.append((time.perf_counter() - t0) * 1000)
        for name, seg in segs.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                calls[name]()
                model[name].append((time.perf_counter() - t0) * 1000)
            for _ in range(per_round):
                res = seg(frame)
                total[name].append(res.timings["total"])
                stages[name].append(res.timings)
    for row in rows:
        if row.name not in segs:
            continue
        row.model_ms_p50 = round(percentile_ms(model[row.name], 50), 3)
        row.model_ms_p95 = round(percentile_ms(model[row.name], 95), 3)
        row.total_ms_p50 = round(percentile_ms(total[row.name], 50), 3)
        row.total_ms_p95 = round(percentile_ms(total[row.name], 95), 3)
        row.fps = round(1000 / row.total_ms_p50, 2) if row.total_ms_p50 else None
        row.stages_ms = {
            k: round(float(np.mean([t[k] for t in stages[row.name]])), 3) for k in ("pre", "infer", "post")
        }
    return round(percentile_ms(eager_ms, 50), 3) if eager_ms else None


def _eager_call(model: Any, size: tuple[int, int], channels: int) -> Callable[[], object]:
    """`model(x)` with batch 1, no grad: the baseline most users measure."""
    import torch

    x = torch.zeros(1, channels, size[1], size[0])

    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call


def _meta(
    ckpt_path: Path, size: tuple[int, int], macs: int | None, data: str, images: int, config: BenchmarkConfig
) -> dict[str, Any]:
    import torch

    from edgeseg._version import __version__
    from edgeseg.bench.card import environment, run_record
    from edgeseg.bench.hardware import cpu_peak, sgemm_gflops

    peak = cpu_peak(config.cpu_ghz)
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
        f"{config.resize_kernel}); rounds interleaved across rows",
    }

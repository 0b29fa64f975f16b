"""What a benchmark measures and how (`BenchmarkConfig`), apart from the code that runs it, so the
parts of the run (rows, rounds, reuse) read it without importing the run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FRAME_SIZE", "BenchmarkConfig"]

FRAME_SIZE = (640, 480)  # the camera-sized frame the whole Segmenter call is timed on


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
        runs: timed calls per row and per kind (model alone, whole Segmenter call) over the first
            `rounds` rounds; every further round adds as many again.
        rounds: the fewest interleaved rounds (edgeseg.bench.rounds); more follow while a ratio's
            spread is above `max_spread` and `time_budget_s` is not spent.
        max_spread: the bound on every ratio's spread over the rounds ((max - min) / 2 / ratio).
        time_budget_s: seconds of timing rounds after which no new round starts (the first
            `rounds` always run).
        warmup: untimed calls per row before timing.
        max_images: data images scored per row (the first ones, in file order).
        out: folder for bundles and reports; default `<checkpoint folder>/benchmark`.
        threads: CPU threads for the PyTorch baseline (default: torch's own choice).
        cpu_ghz: the clock for the CPU's estimated peak rates (default: the clock the kernel
            measures while the rounds run, else the one the OS reports, on many machines the base
            clock, below what the cores reach under load).
        frame_size: (width, height) of the frame the whole Segmenter call is timed on.
        ceiling_seconds: the most time per runtime and precision in one round for the ceiling
            probes (edgeseg.bench.ceilings), timed in the rows' rounds; 0 skips them.
        mode: "latency" (one frame at a time) or "throughput", which also measures every row's
            images per second with the runtime's own parallelism (edgeseg.bench.throughput).
        resize_kernel: the host-side frame resize of every row's Segmenter ("pillow" or "torch").
        bundles: folders holding bundles already exported from this source (a bundle folder, or a
            folder of them) to reuse before exporting; the bundles `edgeseg export` writes beside
            the source by default are always looked at (edgeseg.bench.reuse).
    """

    targets: tuple[str, ...] | None = None
    data: str | None = None
    calib: str | None = None
    img_size: tuple[int, int] | None = None
    runs: int = 30
    rounds: int = 3
    max_spread: float = 0.05
    time_budget_s: float = 60.0
    warmup: int = 5
    max_images: int = 64
    out: str | None = None
    threads: int | None = None
    cpu_ghz: float | None = None
    frame_size: tuple[int, int] = FRAME_SIZE
    ceiling_seconds: float = 1.0
    mode: str = "latency"
    resize_kernel: str = "pillow"
    bundles: tuple[str, ...] = ()

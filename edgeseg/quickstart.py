"""`edgeseg quickstart`: the whole story on built-in data, in a few minutes on a laptop CPU.

Trains a small U-Net on the synthetic dataset, exports it to every target and precision this machine
can produce, benchmarks them all against the PyTorch model on held-out synthetic scenes (ground
truth included), and renders a short demo video of the fastest faithful artifact on a moving
synthetic scene. Everything lands in one folder; nothing is downloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg._claims import claim
from edgeseg._progress import clock
from edgeseg.bench.report import write_reports
from edgeseg.bench.run import BenchmarkConfig, BenchmarkReport, BenchRow, benchmark
from edgeseg.data import SYNTHETIC_CLASSES, SyntheticDataset
from edgeseg.demo import DemoConfig, run_demo
from edgeseg.errors import InputError

__all__ = ["QuickstartConfig", "QuickstartResult", "quickstart"]

DEFAULT_OUT = Path("runs/quickstart")
FAITHFUL = 0.98  # pixel agreement with PyTorch a row needs to be shown in the demo video


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of each step; the defaults fit in about five minutes on two CPU cores.

    Attributes:
        out: the folder for everything; default runs/quickstart (runs/quickstart2, ... if taken).
        epochs, img_size, train_images: the training run on synthetic scenes ((width, height)).
        eval_images: held-out synthetic scenes (another seed) scored by every row.
        targets: "target:precision" entries to export and measure; None means all.
        runs: timed calls per row.
        bench_seconds: the benchmark's time budget for timing rounds beyond its first three
            (BenchmarkConfig.time_budget_s): a short job, so a short one.
        demo_frames: frames of the demo video (0: no video).
        seed: seeds training; the held-out scenes and the demo use other seeds derived from it.
    """

    out: str | None = None
    epochs: int = 6
    img_size: tuple[int, int] = (128, 128)
    train_images: int = 320
    eval_images: int = 64
    targets: tuple[str, ...] | None = None
    runs: int = 30
    bench_seconds: float = 10.0
    demo_frames: int = 150
    seed: int = 0


@dataclass
class QuickstartResult:
    """What the quickstart made: the run folder, the checkpoint, the benchmark and written files."""

    out: Path
    checkpoint: Path
    train_miou: float
    report: BenchmarkReport
    files: dict[str, Path] = field(default_factory=dict)
    demo: dict[str, Any] | None = None
    seconds: float = 0.0


# What marks a folder as holding a quickstart already.
_MARKERS = ("train/best.pt", "benchmark.json")


def _out_dir(config: QuickstartConfig) -> Path:
    from edgeseg.training.setup import next_free_dir

    if config.out is None:
        return next_free_dir(DEFAULT_OUT, _MARKERS)
    out = Path(config.out)
    if any((out / m).exists() for m in _MARKERS):
        raise InputError(f"'{out}' already holds a quickstart; choose another --out or remove it")
    return out


def _demo_row(report: BenchmarkReport) -> BenchRow:
    """The fastest artifact that still agrees with PyTorch (PyTorch itself if none does); rows of a
    run-time precision (bf16) are left out: the demo runs a bundle as exported."""
    faithful = [
        r
        for r in report.rows
        if not r.reference
        and not r.backend_options
        and r.status == "ok"
        and r.fps
        and r.agreement is not None
        and r.agreement >= FAITHFUL
    ]
    return (
        max(faithful, key=lambda r: r.fps or 0.0) if faithful else next(r for r in report.rows if r.reference)
    )


def quickstart(
    config: QuickstartConfig | None = None, log: Callable[[str], None] | None = None
) -> QuickstartResult:
    """Train -> export every available target -> benchmark -> demo video, into one folder.

    Raises InputError when `config.out` already holds a quickstart (nothing is overwritten).
    """
    from edgeseg.training import TrainConfig, train

    config = config or QuickstartConfig()
    say = log or (lambda _: None)
    from edgeseg.training.setup import check_img_size

    check_img_size(config.img_size, 2 ** TrainConfig().depth, depth_option=False)  # before any work
    start = time.perf_counter()
    out = _out_dir(config)
    # Claimed for the whole run: a second quickstart into the same folder is refused at once.
    with claim(out):
        say(_plan(config))
        say(f"[1/4] training a U-Net on {config.train_images} synthetic scenes ({config.epochs} epochs)")
        trained = train(
            TrainConfig(
                out=str(out / "train"),
                epochs=config.epochs,
                img_size=config.img_size,
                synthetic_train=config.train_images,
                synthetic_val=max(16, config.train_images // 5),
                seed=config.seed,
            )
        )
        say("[2/4] exporting every target and precision this machine can produce; [3/4] benchmarking")
        held_out = SyntheticDataset(config.eval_images, config.img_size, seed=config.seed + 1000)
        report = benchmark(
            trained.best_checkpoint,
            BenchmarkConfig(
                targets=config.targets,
                runs=config.runs,
                rounds=min(3, config.runs),
                time_budget_s=config.bench_seconds,
                max_images=config.eval_images,
                out=str(out),
            ),
            dataset=held_out,
            log=say,
        )
        report.meta["data"] = f"held-out synthetic scenes (seed {config.seed + 1000}): {len(held_out)} images"
        files = write_reports(report, out)
        result = QuickstartResult(out, trained.best_checkpoint, trained.best_miou, report, files)
        if config.demo_frames > 0:
            row = _demo_row(report)
            say(f"[4/4] rendering {config.demo_frames} demo frames with {row.name} ({row.backend})")
            result.demo = _render_demo(row, trained.best_checkpoint, out, config)
            result.files["video"] = out / "demo.mp4"
            result.files["demo summary"] = out / "demo.json"
        result.seconds = time.perf_counter() - start
        return result


def _plan(config: QuickstartConfig) -> str:
    """The stages and an estimate of the training, the longest one, from a few timed steps of the same
    network on this machine now; what the rest depends on, said, not guessed."""
    import os

    import torch

    from edgeseg.training import TrainConfig
    from edgeseg.training.losses import DiceCELoss
    from edgeseg.training.setup import auto_batch_size, model_spec, new_model
    from edgeseg.training.step import train_step

    cfg = TrainConfig(epochs=config.epochs, img_size=config.img_size)
    # As training runs it: channels-last (edgeseg.training.loop), the auto batch size.
    model = new_model(cfg, model_spec(cfg, 3, len(SYNTHETIC_CLASSES))).to(memory_format=torch.channels_last)
    batch = auto_batch_size(config.train_images)
    w, h = config.img_size
    x = torch.rand(batch, 3, h, w).to(memory_format=torch.channels_last)
    y = torch.randint(0, len(SYNTHETIC_CLASSES), (batch, h, w))
    loss = DiceCELoss(len(SYNTHETIC_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    train_step(model, x, y, loss, opt, None)  # the first step pays one-time set-up
    t0, probe = time.perf_counter(), 3
    for _ in range(probe):
        train_step(model, x, y, loss, opt, None)
    step_s = (time.perf_counter() - t0) / probe
    steps = -(-config.train_images // batch) * config.epochs
    # Validation runs forward passes only (about a third of a step each) on a fifth as many images.
    train_s = step_s * steps * (1 + 0.2 / 3)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = (
        f"; other work holds the cores now (load {load:.1f} on {cores}), so expect longer"
        if load > 0.5 * cores
        else ""
    )
    return (
        "quickstart: 4 stages: [1/4] train, [2/4] export every target and precision this machine can "
        f"produce, [3/4] benchmark each on {config.eval_images} held-out scenes, [4/4] a "
        f"{config.demo_frames}-frame demo video. Training: about {clock(train_s)} here ({steps} steps at "
        f"{step_s:.2f} s, measured now); the rest takes about as long again, longer with every target "
        f"installed (each export calibrates, builds and checks parity){busy}"
    )


def _render_demo(row: BenchRow, checkpoint: Path, out: Path, config: QuickstartConfig) -> dict[str, Any]:

    assert row.path is not None
    summary = run_demo(
        row.path,
        DemoConfig(
            source="synthetic",
            backend=row.backend or "auto",
            baseline=checkpoint,
            headless=True,
            max_frames=config.demo_frames,
            save=out / "demo.mp4",
            json_path=out / "demo.json",
            seed=config.seed + 2000,
        ),
    )
    return summary.to_dict()

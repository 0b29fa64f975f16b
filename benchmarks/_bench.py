"""Helpers the speed scripts share (run them as `python benchmarks/NAME.py`, which puts this folder on
the import path)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
from edgeseg.models.unet import UNet


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median milliseconds of `runs` calls."""
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def random_checkpoint(folder: Path) -> Path:
    """A width-16, depth-4 U-Net with random weights (latency does not depend on them), saved in `folder`."""
    model = UNet(3, 4, depth=4, width=16).eval()
    meta = Checkpoint(model.config, ["bg", "a", "b", "c"], Normalization((0.5,) * 3, (0.25,) * 3), (256, 256))
    return save_checkpoint(folder / "model.pt", meta, model)


def rss_mb() -> float:
    """Resident set size in MiB, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    """Open file descriptors of this process (Linux)."""
    return len(os.listdir("/proc/self/fd"))

"""Helpers the speed scripts share (run them as `python benchmarks/NAME.py`, which puts this folder on
the import path)."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edgeseg.bench import hardware as perf
from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
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
    """Resident set size in MiB (edgeseg.bench.hardware reads it in MB)."""
    mb = perf.rss_mb()
    if mb is None:
        raise RuntimeError("resident memory cannot be read here (no /proc)")
    return mb * 1e6 / 2**20


def open_fds() -> int:
    """Open file descriptors of this process (Linux)."""
    return len(os.listdir("/proc/self/fd"))


def latency_setup(description: str, prefix: str) -> tuple[argparse.Namespace, Path, Path, Checkpoint]:
    """The command line shared by the latency scripts ([CKPT] --size --runs --rounds): returns the
    arguments, a scratch folder, the checkpoint's path (a random one without CKPT) and its contents."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    ckpt_path = Path(args.checkpoint) if args.checkpoint else random_checkpoint(tmp)
    return args, tmp, ckpt_path, load_checkpoint(ckpt_path)

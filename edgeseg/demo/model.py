"""The model side of the demo: which runtime, how many threads, and its speed when it runs alone.

On a small CPU the demo runs the model with all cores but one and keeps that core for capture and
drawing, which then run in parallel with inference (pipelining), instead of letting the runtime
spread one frame over every core and leaving the rest of the pipeline to wait for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg._cpu import usable_cores
from edgeseg.segmenter import Segmenter

__all__ = ["load_segmenter", "model_threads", "time_alone"]


def model_threads(threads: int | None) -> int:
    """Threads for the model: `threads` as given, else all cores this process may use but one (at least 1)."""
    if threads is not None:
        return threads
    return max(1, usable_cores() - 1)


def load_segmenter(
    model: Path, backend: str, device: str | None, threads: int, resize_kernel: str = "pillow"
) -> Any:
    """The Segmenter, its runtime limited to `threads` (0: the runtime's own default), resizing frames
    with `resize_kernel`.

    The backend is `Segmenter`'s to choose (edgeseg.runtimes.resolve_backend, with the bundle's
    target), so the demo runs exactly what `Segmenter(model, backend)` runs, or refuses it with the
    same message; every backend takes `threads` and spells it for its runtime.
    """

    return Segmenter(
        model, backend=backend, device=device, threads=threads or None, resize_kernel=resize_kernel
    )


def time_alone(seg: Any, image: np.ndarray, budget_s: float = 0.5, runs: int = 30) -> float:
    """Model FPS (pre + infer + post) on one frame before the pipeline starts: the model's own speed,
    to compare the end-to-end FPS with. The 25th percentile of the calls, since what this estimates
    is the speed without interference (other processes, the source's own start-up work)."""
    totals, deadline = [], time.perf_counter() + budget_s
    while len(totals) < runs and (len(totals) < 4 or time.perf_counter() < deadline):
        totals.append(seg(image).timings["total"])
    totals.sort()
    return 1000.0 / totals[len(totals) // 4]

"""The model side of the demo: which runtime, how many threads, and its speed when it runs alone.

On a small CPU the demo runs the model with all cores but one and keeps that core for capture and
drawing, which then run in parallel with inference (pipelining), instead of letting the runtime
spread one frame over every core and leaving the rest of the pipeline to wait for it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_segmenter", "model_threads", "time_alone"]


def model_threads(threads: int | None) -> int:
    """Threads for the model: `threads` as given, else all cores but one (at least 1)."""
    if threads is not None:
        return threads
    # The cores this process may run on (a container or taskset may allow fewer than the machine has).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    return max(1, cores - 1)


def load_segmenter(model: Path, backend: str, device: str | None, threads: int) -> Any:
    """The Segmenter, its runtime limited to `threads` (0: the runtime's own default)."""
    from edgeseg.manifest import read_manifest
    from edgeseg.runtimes import artifact_kind, resolve_backend
    from edgeseg.segmenter import Segmenter

    file = model / read_manifest(model, verify=False).model_file if model.is_dir() else model
    name = resolve_backend(backend, artifact_kind(file))
    # Each runtime spells its thread limit differently; TensorRT runs on the GPU and needs none.
    options: dict[str, dict[str, Any]] = {
        "openvino": {"config": {"INFERENCE_NUM_THREADS": threads}},
        "onnxruntime": {"intra_op_threads": threads},
    }
    seg = Segmenter(model, backend=name, device=device, **(options.get(name, {}) if threads else {}))
    if name == "torch" and threads:
        import torch

        torch.set_num_threads(threads)
    return seg


def time_alone(seg: Any, image: np.ndarray, budget_s: float = 0.5, runs: int = 30) -> float:
    """Model FPS (pre + infer + post) on one frame before the pipeline starts: the model's own speed,
    to compare the end-to-end FPS with. The 25th percentile of the calls, since what this estimates
    is the speed without interference (other processes, the source's own start-up work)."""
    totals, deadline = [], time.perf_counter() + budget_s
    while len(totals) < runs and (len(totals) < 4 or time.perf_counter() < deadline):
        totals.append(seg(image).timings["total"])
    totals.sort()
    return 1000.0 / totals[len(totals) // 4]

"""Throughput mode of the benchmark: images per second with the runtimes' own parallelism.

Latency mode (every row's `fps`) times one frame at a time, as a camera loop runs. Throughput mode
adds, per row, a second Segmenter of the same bundle in `mode="throughput"` (OpenVINO's THROUGHPUT
hint with several infer requests, ONNX Runtime's parallel one-thread runs, preprocessing in threads)
and times `predict_many` over a stream of frames: `images_per_s` = frames / wall time, warm-up
excluded. Both figures come from the same run, so their ratio is what throughput mode buys here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError, first_line
from edgeseg.segmenter import Segmenter

__all__ = ["measure_throughput"]


def measure_throughput(
    rows: list[Any],
    frame: np.ndarray,
    frames: int,
    options: Callable[[Any], dict[str, Any]],
    say: Callable[[str], None],
) -> None:
    """Set `images_per_s` on every loaded row (those with a latency figure): `frames` copies of
    `frame` through a throughput-mode Segmenter of the row's model on the row's backend, with
    `options(row)` as its extra arguments (the baseline's preprocessing)."""

    for row in rows:
        if row.status != "ok" or row.total_ms_p50 is None or row.path is None:
            continue
        say(f"throughput {row.name}")
        try:
            seg = Segmenter(
                row.path, backend=row.backend, input_format="rgb", mode="throughput", **options(row)
            )
        except EdgesegError as exc:  # keep the latency figures; say why this one is missing
            row.throughput_reason = first_line(exc)
            continue
        with seg:
            stream = [frame] * frames
            list(seg.predict_many(stream))  # warm-up: streams, requests and threads started
            t0 = time.perf_counter()
            done = sum(1 for _ in seg.predict_many(stream))
            elapsed = time.perf_counter() - t0
        rate = done / elapsed if elapsed > 0 else float("nan")
        if not np.isfinite(rate) or rate <= 0:
            row.throughput_reason = f"no finite rate measured ({done} frames in {elapsed:.6f} s)"
            continue
        row.images_per_s = round(rate, 2)

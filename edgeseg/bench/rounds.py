"""The benchmark's timing rounds: every loaded row's model-alone and whole-call latency, interleaved
across rows, so machine noise (another process, thermal changes) hits every row alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.bench.hardware import percentile_ms

if TYPE_CHECKING:
    from edgeseg.bench.rows import BenchRow
    from edgeseg.bench.run import BenchmarkConfig

__all__ = ["time_rows"]


def time_rows(
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

"""benchmark.png: each row's speed against the accuracy it lost, on axes that do not exaggerate.

Speed is FPS from 0, so that twice as fast looks twice as far. Accuracy is the drop against the
baseline in points (mIoU points with ground truth, else the percentage of pixels whose class differs
from the baseline's), from 0 and spanning at least `MIN_SPAN_POINTS`: an axis fitted to the data
made a 0.03-point difference fill the chart and look like a collapse. An mIoU drop budget is drawn
when one was given: the benchmark's `meta["max_drop"]`, else the `--max-drop` the rows' bundles
were exported with (recorded in their manifests).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeseg._io import atomic_path
from edgeseg._plot import pyplot
from edgeseg.errors import EdgesegError
from edgeseg.formats import TARGETS
from edgeseg.manifest import read_manifest

__all__ = ["MIN_SPAN_POINTS", "benchmark_figure", "drop_budget", "drop_limits", "plot_benchmark"]

MIN_SPAN_POINTS = 2.0  # the least span of the drop axis, in points

_COLOURS = {t.name: t.colour for t in TARGETS.values()}  # from the targets' descriptors
_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}


def drop_limits(
    drops: Sequence[float], budget: float | None = None, min_span: float = MIN_SPAN_POINTS
) -> tuple[float, float]:
    """The drop axis' limits: 0, every drop and the budget inside, at least `min_span` points between
    the lowest and the highest of them, and a margin so that no marker sits on the frame."""
    lo = min(0.0, *drops)
    hi = max(0.0, *drops, *([budget] if budget is not None else []))
    hi = max(hi, lo + min_span)
    margin = 0.06 * (hi - lo)
    return lo - margin, hi + margin


def drop_budget(report: Any) -> float | None:
    """The mIoU drop budget in points: `report.meta["max_drop"]`, else the tightest `--max-drop`
    recorded in the measured rows' bundles; None when neither was given."""
    given = report.meta.get("max_drop")
    if isinstance(given, (int, float)):
        return float(given)

    budgets = []
    for row in report.rows:
        if row.reference or row.status != "ok" or not row.path or not Path(row.path).is_dir():
            continue
        try:
            quantization = read_manifest(row.path, verify=False).quantization or {}
        except (EdgesegError, OSError):
            continue
        if isinstance(quantization.get("max_drop_points"), (int, float)):
            budgets.append(float(quantization["max_drop_points"]))
    return min(budgets) if budgets else None


def plot_benchmark(report: Any, path: Path) -> None:
    """Write `benchmark_figure(report)` to `path` (PNG)."""

    fig = benchmark_figure(report)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        pyplot().close(fig)


def benchmark_figure(report: Any) -> Any:
    """The chart of `report` (a BenchmarkReport), a matplotlib figure."""

    plt = pyplot()
    ok = [r for r in report.rows if r.status == "ok" and r.fps]
    use_miou = all(r.miou_drop is not None for r in ok)

    def drop(r: Any) -> float:
        if use_miou:
            return float(r.miou_drop)
        return 0.0 if r.reference else (1.0 - (r.agreement or 0.0)) * 100

    budget = drop_budget(report) if use_miou else None
    base_fps = next((r.fps for r in ok if r.reference), None)
    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=110, layout="constrained")
    # Colour by runtime, marker by precision, names and figures in the legend beside the axes: labels
    # beside the points collide as soon as two artifacts are equally fast.
    for r in ok:
        base = r.reference
        ax.scatter(
            r.fps,
            drop(r),
            s=170 if base else 70,
            marker="*" if base else _MARKERS.get(r.precision, "o"),
            color="black" if base else _COLOURS.get(r.target, "tab:gray"),
            label=f"{r.name} (baseline): {_fps(r.fps)} FPS"
            if base
            else f"{r.name}: {_fps(r.fps)} FPS{_times(r.fps, base_fps)}, drop {drop(r):+.2f} pts",
            zorder=3,
        )
    ax.axhline(0.0, color="black", linewidth=0.8, alpha=0.6, zorder=1)
    lo, hi = drop_limits([drop(r) for r in ok] or [0.0], budget)
    if budget is not None:
        ax.axhline(
            budget,
            color="tab:red",
            linestyle="--",
            linewidth=1.2,
            zorder=2,
            label=f"drop budget {budget:g} pts",
        )
        ax.axhspan(budget, hi, color="tab:red", alpha=0.07, zorder=0)
    ax.set_ylim(lo, hi)
    ax.set_xlim(0, max((r.fps for r in ok), default=1.0) * 1.12)
    ax.set_xlabel("FPS, whole Segmenter call (p50): further right is faster")
    ax.set_ylabel(
        "mIoU lost vs the baseline (points)" if use_miou else "pixels differing from the baseline (%)"
    )
    if ok:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    missing = [r.name for r in report.rows if r.status != "ok"]
    title = "edgeseg benchmark: speed vs accuracy lost (lower is better)"
    if missing:
        title += f"\nnot measured here: {', '.join(missing)}"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def _fps(fps: float) -> str:
    return f"{fps:.0f}" if fps >= 100 else f"{fps:.3g}"


def _times(fps: float, base_fps: float | None) -> str:
    """ " (4.2x)": the speed against the baseline's, as far apart as the points on the FPS axis."""
    return f" ({fps / base_fps:.1f}x)" if base_fps else ""

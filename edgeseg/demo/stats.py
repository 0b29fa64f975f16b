"""The demo's figures: per-stage timings, the live figures (HUD and /stats.json) and the summary.

The pipeline hands its figures over as a `DemoState`, a frozen snapshot it builds, so this module
reads no pipeline internals and imports nothing of it."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.demo._cv import load_cv2
from edgeseg.demo.config import DemoSummary
from edgeseg.evaluation.metrics import ConfusionMatrix, SegMetrics

__all__ = [
    "DemoState",
    "FlickerMeter",
    "RateMeter",
    "StageTimes",
    "build_summary",
    "hud_lines",
    "latency_percentiles",
    "live_stats",
    "update_confusion",
]

# Stages in the order a frame meets them. wait_in: the model thread waiting for a frame; wait_out:
# waiting for the drawing side to take its result; truth: scoring against ground truth; render:
# overlay + HUD; encode: video writing; stream: JPEG for the browser; display: the window.
STAGES = (
    "wait_in",
    "pre",
    "infer",
    "post",
    "total",
    "wait_out",
    "truth",
    "render",
    "encode",
    "stream",
    "display",
)


class StageTimes:
    """Milliseconds per stage: means over the run and over the last `recent` frames; thread-safe."""

    def __init__(self, recent: int = 30) -> None:
        self._lock = threading.Lock()
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=recent))

    def add(self, **ms: float) -> None:
        with self._lock:
            for name, value in ms.items():
                self._sum[name] += value
                self._count[name] += 1
                self._recent[name].append(value)

    def means(self, recent: bool = False) -> dict[str, float]:
        with self._lock:
            if recent:
                return {n: sum(self._recent[n]) / len(self._recent[n]) for n in STAGES if self._recent.get(n)}
            return {n: self._sum[n] / self._count[n] for n in STAGES if self._count.get(n)}


def update_confusion(cm: ConfusionMatrix, pred: np.ndarray, truth: np.ndarray) -> None:
    """`cm.update(pred, truth)`, ~10x faster for up to 15 classes with uint8 masks: the pair
    (truth, pred) is packed into one byte and counted by OpenCV's histogram, where the generic path
    widens every pixel to int64 (4 ms per 640x480 frame, a third of a small model's time)."""
    k = cm.num_classes
    if k > 15 or pred.dtype != np.uint8 or truth.dtype != np.uint8:
        return cm.update(pred, truth)
    # Truth ids >= k (ignored, unlabelled) pack to >= k*k, outside the histogram's range; so does
    # the ignore id itself once it is moved beyond the classes.
    t = np.minimum(truth, k)
    if cm.ignore_index is not None and cm.ignore_index < k:
        t[truth == cm.ignore_index] = k
    packed = t * np.uint8(k) + np.minimum(pred, k - 1)
    hist = load_cv2().calcHist([packed], [0], None, [k * k], [0, k * k]).reshape(k, k).astype(np.int64)
    cm.matrix += hist
    cm.images += int(hist.sum() > 0)  # one frame: counted when it has a labelled pixel, as update does


class FlickerMeter:
    """Mask temporal stability: the share of pixels whose class changes between consecutive masks
    (0 on a static scene for a deterministic model; noise, not motion, is what a low-precision model
    adds on a static or slowly panning source). Masks of another size than the previous one start a
    new sequence rather than count as flips."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.flips = 0
        self.pixels = 0
        self.pairs = 0

    def add(self, mask: np.ndarray) -> float | None:
        """Count `mask` against the previous one; this pair's share, or None for the first mask."""
        prev, self._prev = self._prev, mask
        if prev is None or prev.shape != mask.shape:
            return None
        flips = int(np.count_nonzero(prev != mask))
        self.flips += flips
        self.pixels += mask.size
        self.pairs += 1
        return flips / mask.size

    @property
    def share(self) -> float | None:
        """Flipped pixels / compared pixels over every pair so far; None before the second mask."""
        return self.flips / self.pixels if self.pixels else None


def latency_percentiles(samples_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and p99 of millisecond samples (linear interpolation); None without samples."""
    if not samples_ms:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(np.asarray(samples_ms, dtype=np.float64), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


class RateMeter:
    """Events per second over a sliding time window: the frames done in about the last `window_s`
    seconds, (count - 1) / their time span. None until the events span `min_span_s`: two frames
    1 ms apart say nothing about a rate (the first frames of a run showed "FPS 315" that way).

    Args:
        window_s: the window's length; the rate follows changes within about this time.
        min_span_s: the least time the counted events must span before a rate is given.
        clock: seconds, monotonic (time.perf_counter; a fake one in tests).
    """

    def __init__(
        self, window_s: float = 2.0, min_span_s: float = 0.5, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.window_s, self.min_span_s, self.clock = window_s, min_span_s, clock
        self._times: deque[float] = deque()

    def tick(self, at: float | None = None) -> None:
        """One event, now (or `at`, a time of the same clock)."""
        now = self.clock() if at is None else at
        self._times.append(now)
        # Keep the oldest event while the next one is still inside the window, so the counted span
        # covers the whole window (and a slow stream keeps its last two events).
        while len(self._times) > 2 and now - self._times[1] >= self.window_s:
            self._times.popleft()

    def rate(self) -> float | None:
        """Events per second over the window, or None without enough evidence yet."""
        if len(self._times) < 2:
            return None
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span >= self.min_span_s else None


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class DemoState:
    """The run's figures at one moment, as the pipeline hands them to `live_stats` and `build_summary`.

    Attributes:
        model: the model's path. backend: the backend's registry name; device: its description.
        precision: the model's precision. source: the source's description.
        frames: frames drawn so far; fps: frames drawn per second over the last seconds (RateMeter),
            None until there is enough evidence.
        stages_recent, stages: mean milliseconds per stage over the last frames and over the run.
        baseline: the comparison's figures (BaselineWorker.figures()), or None without one.
        baseline_note: which baseline is used, or why there is none.
        truth: scores against ground truth, or None when no frame had any or they stand on too
            little evidence (edgeseg._evidence; `truth_note` then says what is missing, or why the
            source's truth is not scored); truth_frames: frames scored.
        duration_s: the run's length without pauses. latency_ms: mean capture-to-display time;
        latency_pcts: its p50/p95/p99 (over the recent frames live, the whole run at the end).
        flicker: the share of pixels whose class flipped between consecutive masks (FlickerMeter);
        flicker_pairs: the frame pairs it was measured on.
        isolated_fps: the model's FPS timed alone before the run. threads: the model's thread limit.
        captured, dropped, reopens, stalled: the capture's counters and whether it is stalled now.
        snapshots: PNGs written by the s key. url: the browser view's address, or None.
        clients: the browser view's connection counters (StreamServer.counters()), or None.
    """

    model: Path
    backend: str
    device: str
    precision: str
    source: str
    frames: int = 0
    fps: float | None = None
    stages_recent: Mapping[str, float] = field(default_factory=dict)
    stages: Mapping[str, float] = field(default_factory=dict)
    baseline: Mapping[str, Any] | None = None
    baseline_note: str = ""
    truth: SegMetrics | None = None
    truth_frames: int = 0
    truth_note: str = ""
    duration_s: float = 0.0
    latency_ms: float = 0.0
    latency_pcts: Mapping[str, float | None] = field(default_factory=dict)
    flicker: float | None = None
    flicker_pairs: int = 0
    isolated_fps: float = 0.0
    threads: int | None = None
    captured: int = 0
    dropped: int = 0
    reopens: int = 0
    stalled: bool = False
    snapshots: tuple[str, ...] = ()
    url: str | None = None
    clients: Mapping[str, int] | None = None


def live_stats(state: DemoState) -> dict[str, Any]:
    """The figures of the moment: recent FPS and stage times, running agreement and mIoU."""
    stages, base, truth = state.stages_recent, state.baseline or {}, state.truth
    return {
        "model": state.model.name,
        "backend": state.backend,
        "device": state.device,
        "precision": state.precision,
        "source": state.source,
        "frames": state.frames,
        "fps": state.fps,
        "model_fps": 1000.0 / stages["total"] if stages.get("total") else None,
        "stages_ms": {k: round(v, 3) for k, v in stages.items() if k in ("pre", "infer", "post", "render")},
        "agreement": base.get("pixel_agreement"),
        "miou_vs_baseline": _nan_to_none(base.get("miou")),
        "baseline_frames": base.get("frames_compared", 0),
        "miou_vs_truth": truth.miou if truth else None,
        "latency_ms": dict(state.latency_pcts),
        "flicker": state.flicker,
        "flicker_pytorch": base.get("flicker_pytorch"),
        "flicker_artifact_compared": base.get("flicker_artifact"),
        "baseline_label": base.get("label") or "PyTorch",
        "dropped": state.dropped,
        "state": "stalled, reopening" if state.stalled else "running",
        "time": time.time(),
    }


def _shown(rate: float | None) -> str:
    return "--" if rate is None else f"{rate:.1f}"  # "--": not measured yet (never a made-up 0)


def hud_lines(s: dict[str, Any]) -> list[str]:
    """The HUD's text, from `live_stats`."""
    st = s["stages_ms"]
    lines = [
        f"{s['backend']} {s['precision'].upper()}  frame {s['frames']}",
        f"FPS {_shown(s['fps'])}  model {_shown(s['model_fps'])}",
        "ms " + " ".join(f"{k} {v:.1f}" for k, v in st.items()),
    ]
    if s["agreement"] is not None:
        miou = "-" if s["miou_vs_baseline"] is None else f"{s['miou_vs_baseline']:.3f}"
        label = s.get("baseline_label") or "PyTorch"
        lines.append(f"vs {label} {s['agreement']:.2%} mIoU {miou} (n={s['baseline_frames']})")
    if s["miou_vs_truth"] is not None:
        lines.append(f"vs truth mIoU {s['miou_vs_truth']:.3f}")
    lat = s.get("latency_ms") or {}
    if lat.get("p50") is not None:
        lines.append(f"latency p50/p95/p99 {lat['p50']:.0f}/{lat['p95']:.0f}/{lat['p99']:.0f} ms")
    if s.get("flicker") is not None:
        line = f"flicker {s['flicker']:.2%}"
        if s.get("flicker_pytorch") is not None and s.get("flicker_artifact_compared") is not None:
            # Both on the frames the baseline compared, so the pair is like for like.
            line += (
                f"  sampled: model {s['flicker_artifact_compared']:.2%} "
                f"{s.get('baseline_label') or 'PyTorch'} {s['flicker_pytorch']:.2%}"
            )
        lines.append(line)
    lines.append(f"dropped {s['dropped']}" + ("  STALLED" if s["state"] != "running" else ""))
    return lines


def _flicker(state: DemoState) -> dict[str, Any] | None:
    if state.flicker is None:
        return None
    base = state.baseline or {}
    return {
        "artifact": state.flicker,
        "artifact_pairs": state.flicker_pairs,
        # On the frames the baseline compared (sampled, so further apart than consecutive frames):
        "pytorch_on_compared": base.get("flicker_pytorch"),
        "artifact_on_compared": base.get("flicker_artifact"),
        "compared_pairs": base.get("flicker_pairs", 0),
    }


def build_summary(
    state: DemoState, ended: str, video: Path | None = None, video_frames: int = 0
) -> DemoSummary:
    """The run's summary from its final state; `video` is the finished --save file, if any."""
    stages, duration = state.stages, max(state.duration_s, 1e-9)
    fps = state.frames / duration if state.frames else 0.0
    model_fps = 1000.0 / stages["total"] if stages.get("total") else 0.0
    truth = state.truth
    # Figures the run set out to measure but could not stand behind (edgeseg._evidence).
    missing = [
        m for m in ((state.baseline or {}).get("missing"), state.truth_frames and state.truth_note) if m
    ]
    return DemoSummary(
        model=str(state.model),
        backend=state.device,
        precision=state.precision,
        source=state.source,
        frames=state.frames,
        duration_s=round(duration, 3),
        fps=round(fps, 2),
        model_fps=round(model_fps, 2),
        infer_fps=round(1000.0 / stages["infer"], 2) if stages.get("infer") else 0.0,
        model_fps_isolated=round(state.isolated_fps, 2),
        fps_ratio=round(fps / model_fps, 4) if model_fps else 0.0,
        threads=state.threads,
        stages_ms={k: round(v, 3) for k, v in stages.items()},
        latency_ms=round(state.latency_ms, 3),
        latency_percentiles_ms=dict(state.latency_pcts),
        flicker=_flicker(state),
        captured=state.captured,
        dropped=state.dropped,
        reopens=state.reopens,
        baseline=dict(state.baseline) if state.baseline is not None else None,
        baseline_note=state.baseline_note,
        truth=(
            {"frames": state.truth_frames, "miou": truth.miou, "pixel_accuracy": truth.pixel_accuracy}
            if truth
            else None
        ),
        truth_note=state.truth_note,
        missing=missing,
        ended=ended,
        video=str(video) if video else None,
        video_frames=video_frames if video else 0,
        snapshots=list(state.snapshots),
        url=state.url,
        clients=dict(state.clients) if state.clients is not None else None,
    )

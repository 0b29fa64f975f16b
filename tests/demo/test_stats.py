"""The demo's figures from a `DemoState` snapshot: what the HUD, /stats.json and the summary say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edgeseg.demo.stats import DemoState, build_summary, hud_lines, live_stats
from edgeseg.evaluation.metrics import SegMetrics


def _state(**changes: object) -> DemoState:
    state = DemoState(
        model=Path("runs/x/bundle"),
        backend="onnxruntime",
        device="onnxruntime 1.2 (CPUExecutionProvider)",
        precision="int8",
        source="synthetic 64x48",
        frames=40,
        fps=2.0,
        stages_recent={"pre": 1.0, "infer": 4.0, "post": 1.0, "total": 8.0, "wait_in": 0.5},
        stages={"pre": 1.0, "infer": 5.0, "post": 1.0, "total": 10.0},
        baseline={"pixel_agreement": 0.99, "miou": float("nan"), "frames_compared": 3},
        truth=SegMetrics(miou=0.5, dice=0.6, pixel_accuracy=0.9),
        truth_frames=4,
        duration_s=2.0,
        latency_ms=12.5,
        isolated_fps=120.0,
        threads=1,
        captured=41,
        dropped=1,
        snapshots=("a.png",),
    )
    return dataclasses.replace(state, **changes)


def test_state_is_a_frozen_snapshot():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _state().frames = 1  # type: ignore[misc]


def test_live_stats_and_hud():
    s = live_stats(_state())
    assert s["fps"] == 2.0 and s["model_fps"] == 125.0 and s["backend"] == "onnxruntime"
    assert s["stages_ms"] == {"pre": 1.0, "infer": 4.0, "post": 1.0}  # wait_in is not shown
    assert s["miou_vs_baseline"] is None and s["miou_vs_truth"] == 0.5 and s["state"] == "running"
    lines = hud_lines(s)
    assert lines[0] == "onnxruntime INT8  frame 40" and "vs PyTorch 99.00% mIoU - (n=3)" in lines
    assert live_stats(_state(stalled=True))["state"] == "stalled, reopening"
    early = live_stats(_state(fps=None, stages_recent={}))  # not enough evidence yet: no figure
    assert early["fps"] is None and hud_lines(early)[1] == "FPS --  model --"


def test_fps_is_a_windowed_rate_with_enough_evidence():
    from edgeseg.demo.stats import RateMeter

    now = [100.0]
    meter = RateMeter(window_s=2.0, min_span_s=0.5, clock=lambda: now[0])
    assert meter.rate() is None
    for _ in range(3):  # three frames 1 ms apart: a burst, not a rate of 1000 FPS
        meter.tick()
        now[0] += 0.001
    assert meter.rate() is None
    now[0] = 100.0
    meter = RateMeter(window_s=2.0, min_span_s=0.5, clock=lambda: now[0])
    for _ in range(31):  # 30 FPS for a second
        meter.tick()
        now[0] += 1 / 30
    assert meter.rate() == pytest.approx(30.0)
    for _ in range(301):  # then 100 FPS: after the window only the new pace counts
        meter.tick()
        now[0] += 0.01
    assert meter.rate() == pytest.approx(100.0)
    now[0] += 10.0  # a pause, then a slow stream: two frames 4 s apart still give a rate
    meter.tick()
    now[0] += 4.0
    meter.tick()
    assert meter.rate() == pytest.approx(0.25)
    meter.tick(at=now[0] + 0.5)  # an explicit time of the same clock
    assert meter.rate() == pytest.approx(2 / 4.5)


def test_summary_from_the_final_state(tmp_path: Path):
    summary = build_summary(_state(), "max_frames", tmp_path / "o.mp4", 40)
    assert (summary.fps, summary.model_fps, summary.infer_fps, summary.fps_ratio) == (20.0, 100.0, 200.0, 0.2)
    assert summary.backend.startswith("onnxruntime 1.2") and summary.latency_ms == 12.5
    assert summary.truth == {"frames": 4, "miou": 0.5, "pixel_accuracy": 0.9}
    assert summary.video == str(tmp_path / "o.mp4") and summary.video_frames == 40
    assert summary.snapshots == ["a.png"] and summary.ended == "max_frames"
    bare = build_summary(_state(frames=0, stages={}, truth=None, baseline=None), "stopped")
    assert (bare.fps, bare.model_fps, bare.truth, bare.baseline, bare.video) == (0.0, 0.0, None, None, None)


def test_flicker_on_a_hand_made_mask_sequence():
    from edgeseg.demo.stats import FlickerMeter

    a = np.array([[0, 0], [1, 1]], np.uint8)
    b = np.array([[0, 1], [1, 1]], np.uint8)  # one pixel of four changed
    c = np.array([[2, 1], [0, 0]], np.uint8)  # three of four changed
    meter = FlickerMeter()
    assert meter.add(a) is None and meter.share is None  # one mask: nothing to compare yet
    assert meter.add(b) == 0.25 and meter.add(b) == 0.0 and meter.add(c) == 0.75
    assert (meter.flips, meter.pixels, meter.pairs) == (4, 12, 3) and meter.share == 4 / 12
    assert meter.add(np.zeros((3, 3), np.uint8)) is None  # another size starts a new sequence
    assert meter.add(np.ones((3, 3), np.uint8)) == 1.0
    assert (meter.flips, meter.pixels, meter.pairs) == (13, 21, 4)


def test_latency_percentiles_and_their_place_in_hud_and_summary():
    from edgeseg.demo.stats import latency_percentiles

    # numpy's linear interpolation on 1..100: rank q/100 * 99 between neighbours.
    assert latency_percentiles(list(range(1, 101))) == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    assert latency_percentiles([]) == {"p50": None, "p95": None, "p99": None}
    pcts = {"p50": 10.0, "p95": 20.0, "p99": 31.0}
    base = {"pixel_agreement": 0.99, "miou": 0.9, "frames_compared": 3,
            "flicker_pytorch": 0.001, "flicker_artifact": 0.004, "flicker_pairs": 2}  # fmt: skip
    state = _state(latency_pcts=pcts, flicker=0.0125, flicker_pairs=39, baseline=base)
    lines = hud_lines(live_stats(state))
    assert "latency p50/p95/p99 10/20/31 ms" in lines
    assert "flicker 1.25%  sampled: model 0.40% PyTorch 0.10%" in lines
    summary = build_summary(state, "max_frames")
    assert summary.latency_percentiles_ms == pcts
    assert summary.flicker == {"artifact": 0.0125, "artifact_pairs": 39, "pytorch_on_compared": 0.001,
                               "artifact_on_compared": 0.004, "compared_pairs": 2}  # fmt: skip
    assert any("p50 10.0, p95 20.0, p99 31.0" in line for line in summary.lines())
    assert build_summary(_state(), "stopped").flicker is None  # no pairs measured: no figure

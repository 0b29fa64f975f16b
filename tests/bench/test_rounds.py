"""The benchmark's timing rounds and what it says about them: ratio spreads, rounds repeated until
the spreads are under the bound or the time budget is spent (on a fake clock: exact timings), the
reference layout, the load monitor and its competition warning, and `--compare`'s spread verdict."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgeseg.bench import rounds
from edgeseg.bench.card import inside_spread
from edgeseg.bench.load import CpuTicks, LoadMonitor, LoadSummary, competition
from edgeseg.bench.rows import BenchRow
from edgeseg.bench.run import BenchmarkConfig, _pytorch_fp32
from edgeseg.preprocess import Preprocessing

PRE = Preprocessing("image", "logits", 3, 8, 8, "RGB", (0.5,) * 3, (0.25,) * 3, "stretch", ("a", "b"))


class Clock:
    """A fake perf_counter: time moves only when a fake call says it took so long."""

    def __init__(self) -> None:
        self.t = 0.0
        self.round = 0

    def __call__(self) -> float:
        return self.t


class FakeSegmenter:
    """A Segmenter whose model takes `ms(round)` milliseconds and whose whole call takes 1 ms more."""

    def __init__(self, clock: Clock, ms) -> None:  # type: ignore[no-untyped-def]
        self.clock, self.ms, self.preprocessing = clock, ms, PRE
        self.backend = SimpleNamespace(infer=self._infer)

    def _infer(self, feed: dict) -> None:
        self.clock.t += self.ms(self.clock.round) / 1000

    def __call__(self, frame: np.ndarray) -> SimpleNamespace:
        ms = self.ms(self.clock.round) + 1
        self.clock.t += ms / 1000
        return SimpleNamespace(timings={"pre": 0.5, "infer": ms - 1, "post": 0.5, "total": ms})


def _run(monkeypatch: pytest.MonkeyPatch, onnx_ms, budget: float, eager_ms: float = 12.0):  # type: ignore[no-untyped-def]
    clock = Clock()
    monkeypatch.setattr(rounds, "_now", clock)
    rows = [BenchRow("pytorch", "pytorch", "fp32", reference=True, runs_source=True),
            BenchRow("onnx:fp32", "onnx", "fp32")]  # fmt: skip
    segs = {"pytorch": FakeSegmenter(clock, lambda r: 10.0), "onnx:fp32": FakeSegmenter(clock, onnx_ms)}

    def eager() -> None:
        clock.t += eager_ms / 1000

    def next_round() -> None:
        clock.round += 1

    config = BenchmarkConfig(runs=6, rounds=3, warmup=0, max_spread=0.05, time_budget_s=budget)
    frame = np.zeros((8, 8, 3), np.uint8)
    timing = rounds.time_rows(rows, segs, frame, config, lambda _: None, eager, on_round=next_round)
    return rows, timing


def test_steady_timings_stop_after_the_first_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    rows, timing = _run(monkeypatch, lambda r: 5.0, budget=100.0)
    assert timing["rounds"] == 3 and timing["stopped"] == "every ratio's spread within +-5%"
    assert timing["widest_spread"] == 0.0 and timing["calls_per_round"] == 2
    assert timing["baseline_ms_p50"] == pytest.approx(10.0) and timing["eager_contiguous_ms_p50"] == 12.0
    onnx = rows[1]
    assert onnx.model_ms_p50 == pytest.approx(5.0) and onnx.total_ms_p50 == pytest.approx(6.0)
    assert onnx.spreads["speedup"] == 0.0 and onnx.spreads["call_model"] == 0.0
    assert onnx.stages_ms == {"pre": 0.5, "infer": 5.0, "post": 0.5}


def test_unsteady_timings_go_on_until_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # The artifact takes 5 ms in even rounds and 10 ms in odd ones: its speed-up swings 2x <-> 1x,
    # whose spread no number of rounds brings under 5 %.
    rows, timing = _run(monkeypatch, lambda r: 5.0 if r % 2 == 0 else 10.0, budget=1.0)
    assert timing["rounds"] > 3 and timing["stopped"] == "time budget of 1 s spent"
    assert timing["seconds"] >= 1.0 and timing["widest_spread"] >= (2 - 1) / 2 / 2
    assert rows[1].spreads["speedup"] > 0.05 and rows[1].spreads["model_ms"] > 0.05


def test_no_budget_means_the_first_rounds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    _, timing = _run(monkeypatch, lambda r: 5.0 if r % 2 == 0 else 10.0, budget=0.0)
    assert timing["rounds"] == 3 and "time budget" in timing["stopped"]


def test_spread_and_row_ratios() -> None:
    assert rounds.spread([2.0, 2.0, 2.0]) == 0.0
    assert rounds.spread([1.0, 2.0, 3.0]) == pytest.approx(0.5)  # (3 - 1) / 2 / 2
    assert rounds.spread([2.0]) is None  # one round says nothing about the spread
    assert rounds.spread([2.0, float("nan")]) is None and rounds.spread([2.0, 0.0]) is None
    samples = rounds.Samples(
        model={"base": [[10, 10], [12, 12]], "row": [[5, 5], [4, 4]]},
        total={"base": [[11], [13]], "row": [[6], [5]]},
        eager=[[11, 11], [11, 11]],
    )
    row = BenchRow("row", "onnx", "fp32")
    ratios = rounds.row_ratios(row, samples, "base", None, macs=10**6, ceiling_rounds=[1.0])
    assert ratios["speedup"] == [10 / 5, 11 / 4]  # per round, the faster of channels-last and contiguous
    assert ratios["call_model"] == [6 / 5, 5 / 4]
    assert ratios["ceiling_share"] == [pytest.approx(2e6 / 4 / 1e6)]  # the latest round's ceiling
    assert "speedup_bf16" not in ratios


def test_the_reference_is_the_faster_pytorch_layout() -> None:
    assert (
        _pytorch_fp32({"baseline_ms_p50": 10.0, "eager_contiguous_ms_p50": 12.0})["reference"]
        == "channels-last"
    )
    slow_channels_last = _pytorch_fp32({"baseline_ms_p50": 10.0, "eager_contiguous_ms_p50": 8.0})
    assert slow_channels_last["reference"] == "contiguous" and slow_channels_last["ms_p50"] == 8.0
    assert _pytorch_fp32({"baseline_ms_p50": 10.0, "eager_contiguous_ms_p50": None}) is None


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (LoadSummary(2, {"min": 1.0, "mean": 1.5, "max": 2.0}, steal=0.0, others_cpu=0.02), None),
        (LoadSummary(2, {"min": 2.5, "mean": 3.0, "max": 3.5}, steal=0.0, others_cpu=0.0),
         "load average 3.0 on 2 usable cores"),
        (LoadSummary(2, {"min": 1.0, "mean": 1.0, "max": 1.0}, steal=0.05, others_cpu=0.0),
         "5% of the cores' time stolen by the host"),
        (LoadSummary(2, {"min": 1.0, "mean": 1.0, "max": 1.0}, steal=0.0, others_cpu=0.3),
         "other processes used 30% of the cores"),
        (LoadSummary(4), None),  # nothing measured: nothing to warn about
    ],
)  # fmt: skip
def test_competition_warning(summary: LoadSummary, expected: str | None) -> None:
    line = competition(summary)
    if expected is None:
        assert line is None
    else:
        assert line is not None and expected in line and "\n" not in line
        assert line.startswith("another job competed for the cores")


def test_load_monitor_from_fake_readings() -> None:
    ticks = iter(
        [
            CpuTicks(busy=100, steal=0, total=1000, own_s=0.0),
            CpuTicks(busy=180, steal=4, total=1100, own_s=0.5),
            CpuTicks(busy=250, steal=10, total=1200, own_s=1.0),
        ]
    )
    loads = iter([3.0, 5.0])
    monitor = LoadMonitor(lambda: next(loads), lambda: next(ticks), cores=2, ticks_per_second=100)
    monitor.sample()
    monitor.sample()
    summary = monitor.summary()
    assert summary.load_avg == {"min": 3.0, "mean": 4.0, "max": 5.0} and summary.samples == 2
    # 200 ticks of the cores: 10 stolen, 150 busy of which 100 were this process's own second.
    assert summary.steal == pytest.approx(0.05) and summary.others_cpu == pytest.approx(0.25)
    data = summary.to_dict()
    assert "load average 4.0 on 2 usable cores" in data["competed"] and "25%" in data["competed"]


def test_load_monitor_without_proc() -> None:
    monitor = LoadMonitor(lambda: -1.0, lambda: None, cores=2)
    monitor.sample()
    summary = monitor.summary()
    assert summary.load_avg == {} and summary.steal is None and competition(summary) is None


def test_report_warns_once_when_another_job_competed(tmp_path: Path) -> None:
    from edgeseg.bench.report import summary_lines
    from edgeseg.bench.rows import BenchmarkReport
    from edgeseg.bench.run import _meta

    meta = _meta(Path("best.pt"), (64, 48), 1000, "synthetic", 4, BenchmarkConfig())
    report = BenchmarkReport([BenchRow("pytorch", "pytorch", "fp32", reference=True)], meta)
    meta["load"] = LoadSummary(2, {"min": 1.0, "mean": 1.2, "max": 1.5}, 0.0, 0.01, 3).to_dict()
    quiet = summary_lines(report)
    assert not any("competed" in line for line in quiet)
    assert any(
        line.startswith("load during the rounds: load average 1.0-1.5 (mean 1.2) on 2") for line in quiet
    )
    meta["load"] = LoadSummary(2, {"min": 5.0, "mean": 6.0, "max": 7.0}, 0.0, 0.6, 3).to_dict()
    busy = [line for line in summary_lines(report) if "competed" in line]
    assert len(busy) == 1 and busy[0].startswith("WARNING: another job competed")


def test_inside_spread() -> None:
    assert inside_spread(10.0, 10.4, 0.03, 0.02) == "yes (4% <= 5%)"
    assert inside_spread(10.0, 12.0, 0.03, 0.02) == "no (20% > 5%)"
    assert inside_spread(10.0, 12.0, None, 0.02) == "no spread recorded"
    assert inside_spread(None, 12.0, 0.01, 0.02) == "-"


def test_a_graph_with_pre_post_inside_is_timed_on_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model-alone timing feeds each graph what it takes: a fused graph (normalisation inside)
    the uint8 frame at the model's size, a plain one the normalised NCHW tensor."""
    from dataclasses import replace

    clock = Clock()
    monkeypatch.setattr(rounds, "_now", clock)
    fused = replace(PRE, input_name="frame", dtype="uint8", graph_steps=("normalize",), frame_order="BGR")
    seen: dict[str, tuple] = {}

    def segmenter(pre: Preprocessing) -> FakeSegmenter:
        seg = FakeSegmenter(clock, lambda r: 5.0)
        seg.preprocessing = pre

        def infer(feed: dict[str, np.ndarray]) -> None:
            seen.update({k: (v.shape, v.dtype) for k, v in feed.items()})
            clock.t += 0.005

        seg.backend = SimpleNamespace(infer=infer)
        return seg

    rows = [BenchRow("pytorch", "pytorch", "fp32", reference=True, runs_source=True),
            BenchRow("onnx:fp32", "onnx", "fp32")]  # fmt: skip
    segs = {"pytorch": segmenter(PRE), "onnx:fp32": segmenter(fused)}
    config = BenchmarkConfig(runs=1, rounds=1, warmup=0, time_budget_s=0)
    rounds.time_rows(rows, segs, np.zeros((30, 40, 3), np.uint8), config, lambda _: None, None)
    assert seen["frame"] == ((1, 8, 8, 3), np.uint8) and seen["image"] == ((1, 3, 8, 8), np.float32)

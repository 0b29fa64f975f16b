"""benchmark.png: speed against accuracy lost, on axes that neither exaggerate nor hide."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeseg.bench.chart import MIN_SPAN_POINTS, benchmark_figure, drop_budget, drop_limits, plot_benchmark
from edgeseg.bench.run import BenchmarkReport, BenchRow


def _report(meta: dict | None = None, **paths: str) -> BenchmarkReport:
    """The issue's case: mIoU 0.1531 for PyTorch, 0.1528 for the INT8 row (a 0.03-point drop)."""
    rows = [
        BenchRow("pytorch", "pytorch", "fp32", backend="torch", reference=True, fps=118.0, miou=0.1531,
                 miou_drop=0.0, agreement=1.0),
        BenchRow("onnx:fp32", "onnx", "fp32", backend="onnxruntime", fps=251.0, miou=0.1531, miou_drop=0.0,
                 agreement=0.9999, path=paths.get("onnx:fp32")),
        BenchRow("openvino:int8", "openvino", "int8", backend="openvino", fps=520.0, miou=0.1528,
                 miou_drop=0.03, agreement=0.991, path=paths.get("openvino:int8")),
        BenchRow("tensorrt:fp16", "tensorrt", "fp16", status="not available", reason="needs tensorrt"),
    ]  # fmt: skip
    return BenchmarkReport(rows, meta or {})


@pytest.mark.parametrize(
    ("drops", "budget"), [([0.0, 0.03], None), ([0.0, -0.4, 0.1], None), ([0.0, 7.5], 1.0), ([0.0], 3.0)]
)
def test_drop_axis_includes_zero_and_spans_at_least_the_minimum(drops: list[float], budget: float | None):
    lo, hi = drop_limits(drops, budget)
    assert lo < 0.0 < hi and lo <= min(drops) and hi >= max(drops)
    assert hi - lo >= MIN_SPAN_POINTS
    if budget is not None:
        assert lo < budget < hi


def test_chart_axes_do_not_exaggerate_and_the_legend_hides_no_point(tmp_path: Path):
    import matplotlib.pyplot as plt

    fig = benchmark_figure(_report({"max_drop": 1.0}))
    try:
        (ax,) = fig.axes
        lo, hi = ax.get_ylim()
        assert lo < 0 < hi and hi - lo >= MIN_SPAN_POINTS  # 0.03 points stays a small step
        assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 520  # FPS from 0: ratios read true
        assert 1.0 in [line.get_ydata()[0] for line in ax.get_lines()]  # the drop budget
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "openvino:int8: 520 FPS (4.4x), drop +0.03 pts" in texts
        assert any("budget 1 pts" in t for t in texts)
        assert "not measured here: tensorrt:fp16" in ax.get_title()
        fig.canvas.draw()
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # beside the axes
    finally:
        plt.close(fig)
    plot_benchmark(_report(), tmp_path / "benchmark.png")
    assert (tmp_path / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_ground_truth_the_chart_shows_disagreement_in_points():
    import matplotlib.pyplot as plt

    report = _report()
    for row in report.rows:
        row.miou = row.miou_drop = None
    fig = benchmark_figure(report)
    try:
        (ax,) = fig.axes
        assert "differing" in ax.get_ylabel()
        assert any("drop +0.90 pts" in t.get_text() for t in ax.get_legend().get_texts())  # 1 - 0.991
    finally:
        plt.close(fig)


def test_budget_comes_from_the_bundles_max_drop(tmp_path: Path, tiny_bundle) -> None:
    bundle = tmp_path / "int8"
    bundle.mkdir()
    manifest = json.loads((tiny_bundle("onnx") / "edgeseg.json").read_text())
    manifest["quantization"] = {"method": "accuracy-aware", "max_drop_points": 0.5}
    (bundle / "edgeseg.json").write_text(json.dumps(manifest))
    other = tmp_path / "fp32"
    shutil.copytree(tiny_bundle("onnx"), other)
    assert drop_budget(_report(**{"openvino:int8": str(bundle), "onnx:fp32": str(other)})) == 0.5
    assert drop_budget(_report({"max_drop": 2}, **{"openvino:int8": str(bundle)})) == 2.0  # given wins
    assert drop_budget(_report(**{"onnx:fp32": str(other)})) is None  # exported without a budget

"""The benchmark of a foreign ONNX file: its baseline row is the source on ONNX Runtime."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from edgeseg.bench.run import BenchmarkConfig, benchmark
from edgeseg.exporters.source import SourceFacts
from tests.helpers import make_dataset, make_foreign_onnx


@pytest.mark.usefixtures("small_ceilings")
def test_benchmark_of_a_foreign_onnx_uses_the_source_as_baseline(tmp_path: Path):
    pytest.importorskip("onnxruntime")
    src = make_foreign_onnx(tmp_path / "foreign.onnx")
    data = make_dataset(tmp_path / "data", n=3, size=(48, 32), classes=3)
    facts = SourceFacts(classes=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), color_order="RGB")
    config = BenchmarkConfig(
        targets=("onnx:fp32", "onnx:int8"),
        data=str(data),
        runs=2,
        rounds=1,
        warmup=0,
        time_budget_s=0,
        out=str(tmp_path / "b"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = benchmark(src, config, facts=facts)
    base = report.rows[0]
    assert (base.name, base.reference, base.backend, base.status) == (
        "source onnx",
        True,
        "onnxruntime",
        "ok",
    )
    assert base.agreement == 1.0 and base.miou is not None and base.miou_drop == 0.0
    assert report.meta["reference"].startswith("source onnx: the source ONNX on ONNX Runtime")
    fp32, int8 = report.row("onnx:fp32"), report.row("onnx:int8")
    assert fp32.status == int8.status == "ok" and not fp32.reference
    assert fp32.agreement is not None and fp32.agreement >= 0.999 and fp32.miou == pytest.approx(base.miou)
    assert int8.agreement is not None and int8.agreement > 0.9 and int8.miou_drop is not None
    # No PyTorch module: no MACs, so no GFLOP/s, and no plain-eager timing; speed-ups vs the source.
    assert report.meta["macs"] is None and report.meta["eager_contiguous_ms_p50"] is None
    assert all(r.gflops is None for r in report.rows) and base.speedup == 1.0
    # The bundles record the ONNX file as their source; the reports name the baseline row.
    from edgeseg.bench.report import summary_lines, write_reports
    from edgeseg.manifest import read_manifest

    assert read_manifest(Path(fp32.path or "")).source["kind"] == "onnx"
    paths = write_reports(report, tmp_path / "reports")
    assert "| source onnx |" in paths["md"].read_text() and paths["png"].stat().st_size > 0
    assert "MACs not counted (the source has no PyTorch module)" in "\n".join(summary_lines(report))

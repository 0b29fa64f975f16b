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


@pytest.mark.usefixtures("small_ceilings")
def test_the_size_of_a_source_with_external_data_counts_its_weights(tmp_path: Path):
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 3, 7, 7)).astype(np.float32) * 0.1, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((3, 64, 1, 1)).astype(np.float32) * 0.1, "w2")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[3, 3, 3, 3]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 48])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 48])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w1, w2]),
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    src = tmp_path / "big.onnx"
    onnx.save_model(model, str(src), save_as_external_data=True, location="big.weights", size_threshold=0)
    total = src.stat().st_size + (tmp_path / "big.weights").stat().st_size
    assert (tmp_path / "big.weights").stat().st_size > 20 * src.stat().st_size
    facts = SourceFacts(classes=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), color_order="RGB")
    config = BenchmarkConfig(
        targets=("onnx:fp32",), runs=2, rounds=1, warmup=0, time_budget_s=0, out=str(tmp_path / "b")
    )
    report = benchmark(src, config, facts=facts)
    base, fp32 = report.rows[0], report.row("onnx:fp32")
    assert base.reference and base.size_mb == round(total / 1e6, 2) > 0
    assert fp32.size_mb == pytest.approx(base.size_mb, abs=0.01)  # the bundle holds the same weights

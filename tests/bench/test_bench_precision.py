"""What precision each benchmark row ran at: the bf16 rows of CPUs with native bf16 (present or absent
by the CPU's flags, faked here to stand for either kind), every row's executed precision read back
from its runtime, and the ceiling probes offered only where a runtime computes a precision natively."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from edgeseg.bench import hardware
from edgeseg.bench.precision import compute_precision, runs_as_named
from edgeseg.bench.report import summary_lines
from edgeseg.bench.run import BenchmarkConfig, benchmark

AMX = {"flags": "fma avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8", "vendor_id": "GenuineIntel"}
AVX2 = {"flags": "fma avx2", "vendor_id": "AuthenticAMD"}
FAST = {"runs": 2, "rounds": 1, "warmup": 0, "time_budget_s": 0, "ceiling_seconds": 0.05}


def _openvino_computes_bf16() -> bool:
    import openvino as ov

    from edgeseg.targets.openvino.backend import device_capabilities

    return "BF16" in device_capabilities(ov.Core(), "CPU")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-bf16")  # one folder: the second run reuses the first's bundle


@pytest.mark.usefixtures("small_ceilings")
@pytest.mark.parametrize("cpu", [AMX, AVX2], ids=["native-bf16", "no-bf16"])
def test_bf16_rows_follow_the_cpu_flags(
    cpu: dict[str, str], tiny_ckpt: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: cpu)
    report = benchmark(tiny_ckpt, BenchmarkConfig(targets=("openvino:fp32",), out=str(out), **FAST))
    names = [r.name for r in report.rows]
    if cpu is AVX2:
        assert names == ["pytorch", "openvino:fp32"]
        return
    assert names == ["pytorch", "pytorch:bf16", "openvino:fp32", "openvino:bf16"]
    torch_bf16, fp32, ov_bf16 = report.rows[1], report.rows[2], report.rows[3]
    # bf16 is a run-time precision of the fp32 bundle: the same files, asked to run at bf16.
    assert ov_bf16.path == fp32.path and ov_bf16.backend_options == {"inference_precision": "bf16"}
    assert torch_bf16.backend_options == {"autocast": "bf16"} and torch_bf16.runs_source
    for row in report.rows:  # parity and timings like every row
        assert row.status == "ok" and row.agreement is not None and row.model_ms_p50
        assert row.executed_precision and row.speedup_bf16 is not None
    assert torch_bf16.speedup_bf16 == 1.0
    assert torch_bf16.executed_precision.startswith("bf16")
    # OpenVINO on a CPU without bf16 (flags faked) runs f32 and says so; on one with it, bf16.
    assert ov_bf16.executed_precision == ("bf16" if _openvino_computes_bf16() else "fp32")
    assert fp32.executed_precision == "fp32"  # the fp32 row stays f32 on every CPU
    said = [line for line in summary_lines(report) if line.startswith("openvino:bf16: its kernels ran at")]
    assert bool(said) == (ov_bf16.executed_precision != "bf16")
    from edgeseg.manifest import read_manifest

    assert read_manifest(fp32.path).runtime_precisions == {"bf16": {"inference_precision": "bf16"}}


def test_labels_and_the_ceiling_they_name() -> None:
    from edgeseg.runtimes.base import summarize_precisions

    assert summarize_precisions({"int8": 20, "fp32": 3}) == "int8+fp32"
    assert summarize_precisions({"fp32": 5}, upcast_from="fp16") == "fp32 (fp16 weights upcast)"
    assert summarize_precisions({}) == "unknown"
    assert compute_precision("int8+fp32", "int8") == "int8"
    assert compute_precision("fp32 (fp16 weights upcast)", "fp16") == "fp32"
    assert compute_precision("bf16", "fp16") == "bf16"  # an fp16 export computed in bf16
    assert compute_precision("unknown", "fp16") == "fp16" and compute_precision(None, "fp32") == "fp32"
    assert runs_as_named("int8+fp32", "int8") and runs_as_named("fp32", "fp32")
    assert not runs_as_named("fp32 (fp16 weights upcast)", "fp16") and not runs_as_named("fp32", "bf16")


@pytest.mark.parametrize(
    ("target", "precision"), [("onnx", "fp16"), ("openvino", "fp16"), ("openvino", "int8")]
)
def test_one_executed_precision_for_parity_info_and_the_benchmark(
    tiny_ckpt: Path, tiny_bundle, target: str, precision: str, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """The benchmark row's label is the backend's own `executed_precision`, the same text the export's
    parity report recorded and `edgeseg info` shows (one reading, not one per command)."""
    from edgeseg.bench.rows import BenchRow, load_row
    from edgeseg.exporters.source_open import open_export_source
    from edgeseg.manifest import read_manifest
    from tests.helpers import run_cli

    if target == "openvino" and precision == "int8":
        pytest.importorskip("nncf", reason="pip install 'edgeseg[nncf]'")
    bundle = tiny_bundle(target, precision)
    manifest = read_manifest(bundle)
    row = BenchRow(f"{target}:{precision}", target, precision, path=str(bundle))
    seg = load_row(
        row, (manifest.input.width, manifest.input.height), open_export_source(tiny_ckpt), "pillow"
    )
    assert seg is not None, row.reason
    seg.close()
    ran = row.executed_precision
    if precision == "fp16":  # native fp16 only where the CPU and the runtime have the kernels
        assert ran in ("fp16", "fp32 (fp16 weights upcast)")
    else:
        assert ran is not None and ran.startswith("int8") and row.ceiling_precision == "int8"
    assert row.ceiling_precision == compute_precision(ran, precision)
    assert manifest.parity is not None and manifest.parity["executed_precision"] == ran
    code, out, err = run_cli(["info", str(bundle)], capsys)
    assert code == 0 and f"computed it in {ran}" in out, err


def test_ceiling_probes_only_where_a_runtime_computes_the_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from edgeseg.bench.ceilings import Probe, probe_graph
    from edgeseg.targets.onnx.backend import peak_runner as ort_peak
    from edgeseg.targets.openvino import backend as ov_backend

    native_bf16 = _openvino_computes_bf16()  # the real CPU's, before it is faked below
    probe = Probe(channels=8, size=8, depth=2)
    x = np.zeros((1, 8, 8, 8), np.float32)
    graph = probe_graph(probe, int8=False).SerializeToString()
    assert ort_peak(graph, x, "bf16") is None and ort_peak(graph, x, "fp16") is None
    call, _ = ort_peak(graph, x, "fp32")
    call()
    monkeypatch.setattr(ov_backend, "device_capabilities", lambda core, device: frozenset({"FP32", "INT8"}))
    assert ov_backend.peak_runner(graph, x, "bf16") is None  # a CPU without bf16: no bf16 ceiling
    made = ov_backend.peak_runner(graph, x, "fp32")
    assert made is not None and "x2" in made[1]  # the kernel OpenVINO chose for both convolutions
    # Told the CPU has bf16 when it may not: a probe whose layers did not run bf16 is refused.
    caps = frozenset({"FP32", "INT8", "BF16"})
    monkeypatch.setattr(ov_backend, "device_capabilities", lambda core, device: caps)
    made = ov_backend.peak_runner(graph, x, "bf16")
    assert (made is None) == (not native_bf16)


def test_the_manifest_and_info_say_which_bundles_run_at_bf16_on_request(tiny_bundle, capsys) -> None:  # type: ignore[no-untyped-def]
    from edgeseg.manifest import read_manifest
    from tests.helpers import run_cli

    openvino, onnx = tiny_bundle("openvino"), tiny_bundle("onnx")
    assert read_manifest(openvino).runtime_precisions == {"bf16": {"inference_precision": "bf16"}}
    assert read_manifest(onnx).runtime_precisions == {}  # ONNX Runtime has no bf16 to ask for
    code, out, err = run_cli(["info", openvino], capsys)
    assert code == 0, err
    assert "run-time   bf16 without another export: Segmenter(..., inference_precision='bf16')" in out
    code, out, _ = run_cli(["info", onnx], capsys)
    assert code == 0 and "run-time" not in out

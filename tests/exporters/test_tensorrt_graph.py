"""Engine-ready graphs for TensorRT, on CPU: the structural check passes on what the exporter writes
and fails on graphs that break TensorRT's rules; their accuracy against PyTorch (parity runs the same
graph with ONNX Runtime) stays within the per-precision bounds; the engine cache's matching rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="pip install 'edgeseg[onnx]'")
pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeseg.targets.tensorrt.graph import check_engine_ready  # noqa: E402


@pytest.fixture(scope="module")
def bundles(trained_tiny: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The session's briefly trained tiny model (conftest.py; an untrained one predicts one class,
    which any precision keeps) exported for TensorRT at fp16 and int8, parity measured on its
    labelled data."""
    from edgeseg.exporters import ExportConfig, export

    root = tmp_path_factory.mktemp("trtgraph")
    ckpt, data = trained_tiny
    out: dict[str, object] = {}
    for precision in ("fp16", "int8"):
        out[precision] = export(
            ckpt,
            ExportConfig(
                target="tensorrt",
                precision=precision,
                calib=str(data) if precision == "int8" else None,
                val_data=str(data),
                dynamic=precision == "int8",
                out=str(root / f"trt-{precision}"),
            ),
        )
    return out


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_exported_graph_is_engine_ready_and_accurate(bundles, precision: str):
    result = bundles[precision]
    model = onnx.load(str(result.bundle / "model.onnx"))
    assert check_engine_ready(model, precision) == []
    report = result.parity
    drop = (report.miou_pytorch_vs_gt - report.miou_artifact_vs_gt) * 100
    assert drop <= (0.1 if precision == "fp16" else 1.0), f"{precision} lost {drop:.3f} mIoU points"
    assert report.pixel_agreement >= (0.995 if precision == "fp16" else 0.97)
    assert "onnxruntime" in report.runtime and "not the TensorRT engine" in (report.measured_on or "")


def test_manifest_records_the_engine_ready_graph(bundles):
    from edgeseg.manifest import read_manifest, sha256_file

    bundle = bundles["int8"].bundle
    m = read_manifest(bundle)
    assert (m.target, m.precision, m.model_file) == ("tensorrt", "int8", "model.onnx")
    engine = m.engine or {}
    assert engine["onnx_sha256"] == sha256_file(bundle / "model.onnx") == m.files["model.onnx"]
    assert engine["profile"] == {"input": "image", "min": [1, 3, 24, 24], "opt": [1, 3, 48, 48],
                                 "max": [8, 3, 96, 96]}  # fmt: skip
    q = m.quantization or {}
    assert q["activations"].startswith("int8 symmetric") and q["bias"].startswith("float")
    assert m.parity is not None and "CPU execution" in m.parity["measured_on"]


# ------------------------------------------------------------------------------ the check can fail
def _int8(bundles) -> onnx.ModelProto:
    return copy.deepcopy(onnx.load(str(bundles["int8"].bundle / "model.onnx")))


def _init(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(i for i in model.graph.initializer if i.name == name)


def _first(model: onnx.ModelProto, op: str, pred=lambda n: True) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op and pred(n))


def test_asymmetric_zero_point_fails(bundles):
    model = _int8(bundles)
    zp = _init(model, _first(model, "QuantizeLinear").input[2])
    zp.CopyFrom(numpy_helper.from_array(np.array(3, np.int8), zp.name))
    assert any("non-zero zero point" in p for p in check_engine_ready(model, "int8"))


def test_uint8_activations_fail(bundles):
    model = _int8(bundles)
    q = _first(model, "QuantizeLinear")
    zp = _init(model, q.input[2])
    zp.CopyFrom(numpy_helper.from_array(np.array(0, np.uint8), zp.name))
    assert any("quantizes to uint8" in p for p in check_engine_ready(model, "int8"))


def test_quantized_bias_fails(bundles):
    model = _int8(bundles)
    conv = _first(model, "Conv", lambda n: len(n.input) > 2)
    bias = numpy_helper.to_array(_init(model, conv.input[2]))
    model.graph.initializer.extend([
        numpy_helper.from_array(np.round(bias * 1000).astype(np.int32), "qbias"),
        numpy_helper.from_array(np.array(1e-3, np.float32), "qbias_scale"),
    ])  # fmt: skip
    model.graph.node.append(helper.make_node("DequantizeLinear", ["qbias", "qbias_scale"], ["dqbias"]))
    conv.input[2] = "dqbias"
    assert any("bias must stay a float constant" in p for p in check_engine_ready(model, "int8"))


def test_conv_transpose_weight_on_axis_0_fails(bundles):
    model = _int8(bundles)
    up = _first(model, "ConvTranspose")
    dq = next(n for n in model.graph.node if up.input[1] in n.output)
    for a in dq.attribute:
        if a.name == "axis":
            a.i = 0
    assert any("per channel on axis 1" in p for p in check_engine_ready(model, "int8"))


def test_conv_with_float_activation_fails(bundles):
    model = _int8(bundles)
    conv = _first(model, "Conv")
    act = next(n for n in model.graph.node if conv.input[0] in n.output)  # its activation DQ
    conv.input[0] = next(n for n in model.graph.node if act.input[0] in n.output).input[0]
    problems = check_engine_ready(model, "int8")
    assert any("no quantized (Q/DQ) activation input" in p for p in problems)


def test_fp16_graph_with_fp16_input_fails(bundles):
    model = copy.deepcopy(onnx.load(str(bundles["fp16"].bundle / "model.onnx")))
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    problems = check_engine_ready(model, "fp16")
    assert any("is not float32" in p for p in problems)
    assert check_engine_ready(model, "int8")  # an fp16 graph is no int8 graph either


def test_contrib_op_domain_fails(bundles):
    model = _int8(bundles)
    model.graph.node[0].domain = "com.microsoft"
    assert any("does not know" in p for p in check_engine_ready(model, "int8"))


# ------------------------------------------------------------------------------ engine cache rules
def _record(folder: Path, name: str, *, options: object = None, **fields: object) -> Path:
    """A cached engine and its record, as build_engine writes them, for ONNX "abc" at int8."""
    from edgeseg._reuse import reuse_key
    from edgeseg.targets.tensorrt.build import BuildOptions
    from edgeseg.targets.tensorrt.cache import engine_settings

    engine = folder / name
    engine.write_bytes(b"plan")
    key = reuse_key(engine_settings("abc", "int8", None, options or BuildOptions()))
    base = {"tensorrt": "10.3.0", "compute_capability": "8.7", "precision": "int8", "onnx_sha256": "abc"}
    engine.with_suffix(".json").write_text(json.dumps({**base, "reuse_key": key, **fields}))
    return engine


def test_cached_engine_matches_version_gpu_and_onnx(tmp_path: Path):
    from edgeseg.targets.tensorrt.cache import cache_name, find_cached
    from edgeseg.targets.tensorrt.device import Device

    orin = Device(0, "Orin", "8.7", "12.6")
    name = cache_name("model", "10.3.0", orin, "int8")
    assert name == "model.trt10.3.0.sm87.int8.engine"
    exact = _record(tmp_path, name)
    assert find_cached(tmp_path, "model", "int8", "10.3.0", orin, "abc")[0] == exact
    assert find_cached(tmp_path, "model", "int8", "10.3.0", orin, "other-onnx") is None
    assert find_cached(tmp_path, "model", "int8", "10.4.0", orin, "abc") is None  # TensorRT upgraded
    assert find_cached(tmp_path, "model", "int8", "10.3.0", Device(0, "A100", "8.0", "12"), "abc") is None
    assert find_cached(tmp_path, "model", "fp16", "10.3.0", orin, "abc") is None
    exact.with_suffix(".json").unlink()  # an engine without its record is never trusted
    assert find_cached(tmp_path, "model", "int8", "10.3.0", orin, "abc") is None


def test_compatible_engines_are_reused(tmp_path: Path):
    from edgeseg.targets.tensorrt.build import BuildOptions
    from edgeseg.targets.tensorrt.cache import find_cached
    from edgeseg.targets.tensorrt.device import Device

    vc_opts = BuildOptions(version_compatible=True)
    vc = _record(tmp_path, "model.trt10.3.0.sm87.int8.engine", options=vc_opts, version_compatible=True)
    orin = Device(0, "Orin", "8.7", "12.6")
    assert find_cached(tmp_path, "model", "int8", "10.7.0", orin, "abc", options=vc_opts)[0] == vc
    assert find_cached(tmp_path, "model", "int8", "11.0.0", orin, "abc", options=vc_opts) is None  # majors
    hw_opts = BuildOptions(hardware_compatible=True)
    hw = _record(
        tmp_path, "model.trt10.3.0.sm80.int8.engine", options=hw_opts, compute_capability="8.0",
        hardware_compatible=True,
    )  # fmt: skip
    l4, t4 = Device(0, "L4", "8.9", "12"), Device(0, "T4", "7.5", "12")
    assert find_cached(tmp_path, "model", "int8", "10.3.0", l4, "abc", options=hw_opts)[0] == hw
    assert find_cached(tmp_path, "model", "int8", "10.3.0", t4, "abc", options=hw_opts) is None

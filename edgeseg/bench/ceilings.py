"""Measured compute ceilings: what this machine's runtimes reach on compute-bound work, per precision.

A per-CPU formula (edgeseg.bench.hardware.cpu_peak) is only an estimate: clocks, datapath widths and
what a runtime's kernels use vary by machine. So the benchmark measures, in the same run as its rows,
a large 1x1 convolution (a matrix multiply in a conv's clothes, compute-bound at these sizes) through
ONNX Runtime and OpenVINO, per precision:

- fp32: the float graph on both runtimes (OpenVINO with INFERENCE_PRECISION_HINT=f32);
- fp16: OpenVINO with the hint an fp16 row gets (edgeseg.runtimes.openvino.precision_hint: f16 where
  the CPU computes f16 natively, else f32; never bf16) — what an openvino fp16 row runs at;
- int8: a Q/DQ graph (uint8 activations, int8 weights), which both runtimes run with int8 kernels
  (OpenVINO with the f32 hint of int8 rows, for the layers left in float).

A precision's ceiling is the best rate over its runtimes, in GFLOP/s (2 x MACs / median time; int8
in operations per second, the same units). `ceiling_share` of a benchmark row = its rate / the
ceiling of its precision. A row faster than its ceiling means the ceiling graph was not the best
case; the ceiling is then raised to that row's rate and says so, so a share never exceeds 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["apply_ceilings", "conv_graph", "measure_ceilings"]


def conv_graph(channels: int, size: int, int8: bool) -> Any:
    """A [1, channels, size, size] -> 1x1 Conv (channels -> channels) ONNX model; Q/DQ with `int8`."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((channels, channels, 1, 1)).astype(np.float32) * 0.05
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, size, size])
    if not int8:
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"])]
        inits = [numpy_helper.from_array(w, "w")]
    else:
        scale = np.float32(np.abs(w).max() / 127)
        inits = [
            numpy_helper.from_array(np.round(w / scale).astype(np.int8), "wq"),
            numpy_helper.from_array(np.array(scale, np.float32), "ws"),
            numpy_helper.from_array(np.array(0, np.int8), "wz"),
            numpy_helper.from_array(np.array(4.0 / 255, np.float32), "xs"),
            numpy_helper.from_array(np.array(128, np.uint8), "xz"),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
            helper.make_node("Conv", ["xd", "wd"], ["y"]),
        ]
    graph = helper.make_graph(nodes, "ceiling", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def _rate(call: Callable[[], object], macs: int, seconds: float) -> float:
    """GFLOP/s of `call` (2 x macs per call), from the median of calls over about `seconds`."""
    call()  # warm-up: runtimes allocate and pick kernels on the first call
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 3:
        t = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t)
    return 2 * macs / statistics.median(samples) / 1e9


def _runners(model: Any, x: np.ndarray, precision: str) -> dict[str, Callable[[], object]]:
    import importlib.util

    data = model.SerializeToString()
    runners: dict[str, Callable[[], object]] = {}
    if importlib.util.find_spec("onnxruntime") is not None and precision != "fp16":
        import onnxruntime as ort

        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        runners["onnxruntime"] = lambda: session.run(None, {"x": x})
    if importlib.util.find_spec("openvino") is not None:
        from edgeseg._offline import quiet_telemetry

        quiet_telemetry()
        import openvino as ov

        from edgeseg.runtimes.openvino import device_capabilities, precision_hint

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": precision_hint(precision, device_capabilities(core, "CPU"))}
        request = core.compile_model(core.read_model(data, b""), "CPU", config).create_infer_request()
        runners["openvino"] = lambda: request.infer({0: x})
    return runners


def measure_ceilings(seconds: float = 1.0, channels: int = 512, size: int = 56) -> dict[str, Any]:
    """{precision: {"gflops", "runtime", "by_runtime", "how"}} for fp32, fp16 and int8 measured here
    (a precision no installed runtime runs is left out). `seconds` is spent per runtime and precision."""
    macs = channels * channels * size * size
    x = np.random.default_rng(1).standard_normal((1, channels, size, size)).astype(np.float32)
    how = (
        f"1x1 Conv {channels}->{channels} on 1x{channels}x{size}x{size} ({macs / 1e9:.2f} GMAC), "
        f"median over ~{seconds:g} s per runtime, in the benchmark's run"
    )
    result: dict[str, Any] = {}
    for precision in ("fp32", "fp16", "int8"):
        model = conv_graph(channels, size, int8=precision == "int8")
        rates = {name: _rate(call, macs, seconds) for name, call in _runners(model, x, precision).items()}
        # 4 significant digits, not 1 decimal: a small or slowed graph (tests, a busy CPU) would round to 0.
        rates = {k: float(f"{v:.4g}") for k, v in rates.items() if np.isfinite(v) and v > 0}
        if rates:
            best = max(rates, key=lambda k: rates[k])
            note = {"fp16": "OpenVINO with an fp16 row's hint (f16 where native, else f32)"}.get(precision)
            result[precision] = {
                "gflops": rates[best],
                "runtime": best,
                "by_runtime": rates,
                "how": how + (f"; {note}" if note else ""),
            }
    return result


def apply_ceilings(rows: list[Any], ceilings: dict[str, Any]) -> None:
    """Set each row's `ceiling_share` (its gflops / its precision's ceiling), in (0, 1]. A row above
    its ceiling raises the ceiling to its own rate, recorded in the ceiling's "raised_by"."""
    for row in rows:
        ceiling = ceilings.get(row.precision) if row.gflops else None
        if ceiling is None:
            continue
        if row.gflops > ceiling["gflops"]:
            ceiling["gflops"] = row.gflops
            ceiling["raised_by"] = f"{row.name} ran faster than the ceiling graph; its rate is the ceiling"
    for row in rows:
        ceiling = ceilings.get(row.precision) if row.gflops else None
        if ceiling is not None:
            row.ceiling_share = round(row.gflops / ceiling["gflops"], 4)

"""ONNX Runtime: the `onnx` target (a `model.onnx` bundle at fp32, fp16 or int8 QDQ) and the
`onnxruntime` backend. The folder: backend.py (the runtime), export.py (the exporter), quantize.py
(INT8 settings for the CPU), fuse.py (pre/post in the graph); this file is the descriptor."""

from __future__ import annotations

from typing import Any

from edgeseg._cpu import usable_cores
from edgeseg.targets.spec import BackendSpec, DoctorRules, Requirement, Target

__all__ = ["TARGET"]


def _throughput() -> dict[str, Any]:
    # One thread per run and runs in parallel beat all threads on one frame after another: a small
    # network's operators do not split well over cores, whole frames do.
    return {"parallel": usable_cores(), "threads": 1}


ONNX_TOOLS = (
    Requirement("onnx", "onnx"),
    Requirement("onnxscript", "onnx"),  # torch's dynamo ONNX exporter is built on it
)

RUNTIME = BackendSpec(
    name="onnxruntime",
    title="ONNX Runtime",
    module="edgeseg.targets.onnx.backend",
    class_name="OnnxRuntimeBackend",
    requires=("onnxruntime",),
    extra="onnx",
    kinds=("onnx",),
    auto_rank=30,
    packages=("onnxruntime", "onnxruntime-gpu"),
    throughput=_throughput,
    peak="edgeseg.targets.onnx.backend:peak_runner",
)

TARGET = Target(
    name="onnx",
    title="ONNX Runtime",
    suffixes=(".onnx",),
    precisions=("fp32", "fp16", "int8"),
    options=frozenset({"dynamic", "prepost"}),
    requires=(*ONNX_TOOLS, Requirement("onnxruntime", "onnx")),
    backends=("onnxruntime", "openvino"),
    exporter="edgeseg.targets.onnx.export",
    runtimes=(RUNTIME,),
    calib_methods=("minmax", "entropy", "percentile"),
    doctor=DoctorRules(int8_ops=frozenset({"Conv", "MaxPool", "Concat"}), contrib_ops=True),
    colour="tab:blue",
    packages=("onnx",),
)

"""OpenVINO: the `openvino` target (an IR pair `model.xml` + `model.bin`; INT8 by NNCF) and the
`openvino` backend, which also runs `.onnx` files. The folder: backend.py (the runtime), export.py
(the exporter and its NNCF quantizer), fuse.py (pre/post in the graph); this file is the descriptor."""

from __future__ import annotations

from typing import Any

from edgeseg.targets.onnx import ONNX_TOOLS
from edgeseg.targets.spec import BackendSpec, DoctorRules, Requirement, ResizeRules, Target

__all__ = ["TARGET"]


def _throughput() -> dict[str, Any]:
    return {"performance_hint": "THROUGHPUT"}


RUNTIME = BackendSpec(
    name="openvino",
    title="OpenVINO",
    module="edgeseg.targets.openvino.backend",
    class_name="OpenVINOBackend",
    requires=("openvino",),
    extra="openvino",
    kinds=("onnx", "openvino"),
    auto_rank=20,
    packages=("openvino",),
    throughput=_throughput,
    # OpenVINO's CPU plugin ignores ONNX Resize's `antialias` (measured: up to 129 grey levels off
    # Pillow's resize when shrinking), so a graph that resizes frames itself would change the masks.
    graph_steps_unsupported=frozenset({"resize"}),
    peak="edgeseg.targets.openvino.backend:peak_runner",
)

TARGET = Target(
    name="openvino",
    title="OpenVINO",
    suffixes=(".xml", ".bin"),
    precisions=("fp32", "fp16", "int8"),
    options=frozenset({"dynamic", "prepost"}),
    # The IR is converted from the exported ONNX graph, so the ONNX tools are needed too.
    requires=(*ONNX_TOOLS, Requirement("openvino", "openvino")),
    backends=("openvino",),
    exporter="edgeseg.targets.openvino.export",
    runtimes=(RUNTIME,),
    calib_methods=("minmax",),  # NNCF's own range estimators; the option names no other
    doctor=DoctorRules(
        int8_ops=frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"}),  # NNCF's default
        resize=ResizeRules(needs_constant_sizes=True, rounds_nearest_its_way=True),
    ),
    colour="tab:purple",
    packages=("nncf",),
    # bf16 is a run-time precision of the fp32 IR, not an export: the CPU plugin converts the float
    # weights when it compiles, so a bf16 "export" would be the same files, and would silently run
    # f32 on CPUs without native bf16. The caller opts in where the CPU has AVX512-BF16 or AMX.
    runtime_precisions={"bf16": {"inference_precision": "bf16"}},
)

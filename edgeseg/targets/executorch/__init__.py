"""ExecuTorch: PyTorch's on-device runtime (Android, iOS, Arm and x86 Linux boards) as an edgeseg target.

The network is captured with `torch.export`, lowered to the XNNPACK delegate (ExecuTorch's CPU
kernels: NEON on Arm, AVX2/AVX-512 on x86) and saved as one `.pte` program that carries the
manifest's essentials as a constant method, so a bare `.pte` still says how to feed it. INT8 is
PyTorch 2 Export post-training quantization (PT2E) with XNNPACK's quantizer.

The folder holds the whole target: backend.py (ExecuTorchBackend: runs a `.pte` with ExecuTorch's
Python runtime, on CPU), export.py (`export_artifact(job)`: the bundle's `model.pte`, fp32 or int8;
`--dynamic` bounded), quantize.py (PT2E INT8: observers for --calib-method, the --max-drop search),
and this descriptor.
"""

from __future__ import annotations

from edgeseg.targets.spec import BackendSpec, DoctorRules, Requirement, Target

__all__ = ["TARGET"]

RUNTIME = BackendSpec(
    name="executorch",
    title="ExecuTorch",
    module="edgeseg.targets.executorch.backend",
    class_name="ExecuTorchBackend",
    requires=("executorch",),
    extra="executorch",
    kinds=("executorch",),
    auto_rank=40,
    packages=("executorch", "torchao"),
)

TARGET = Target(
    name="executorch",
    title="ExecuTorch",
    suffixes=(".pte",),
    precisions=("fp32", "int8"),
    # --dynamic: batch, height and width vary up to bounds (export.DYNAMIC_MAX_BATCH and
    # DYNAMIC_MAX_SCALE x the export size): ExecuTorch plans the memory of a program's inputs and
    # outputs ahead of time, for the largest shape it accepts.
    options=frozenset({"dynamic"}),
    # The runtime (its exporter and parity's run) and the ONNX tools: every export runs the doctor on
    # the FP32 ONNX graph first.
    requires=tuple(Requirement(m, "executorch") for m in ("executorch", "onnx", "onnxscript")),
    backends=("executorch",),
    exporter="edgeseg.targets.executorch.export",
    runtimes=(RUNTIME,),
    calib_methods=("minmax", "entropy", "percentile"),
    # XNNPACKQuantizer quantizes convolutions, transposed convolutions and linear layers (Gemm in the
    # doctor's ONNX view); a bare matmul (attention) stays float.
    doctor=DoctorRules(int8_ops=frozenset({"Conv", "ConvTranspose", "Gemm"})),
    colour="tab:orange",
)

"""TensorRT: the `tensorrt` target (the engine-ready ONNX graph, and the engine where TensorRT and a
GPU are) and the `tensorrt` backend. The folder, runner and builder side by side as Polygraphy keeps
them: runner.py (the backend), build.py (engine build and profiles), cache.py (engine cache names
and reuse rules), device.py (the CUDA device's facts), export.py (the exporter), graph.py (precision
in the graph: the INT8 quantizer and the engine-ready check), fuse.py (pre/post in the graph, the
resize included); this file is the descriptor. tensorrt itself is imported only where it is used."""

from __future__ import annotations

from edgeseg.targets.onnx import ONNX_TOOLS
from edgeseg.targets.spec import BackendSpec, DoctorRules, Requirement, ResizeRules, Target

__all__ = ["INSTALL_HINT", "TARGET"]

# TensorRT's libraries do not come from PyPI: what to install instead of a pip extra.
INSTALL_HINT = (
    "on x86 with an NVIDIA GPU 'pip install tensorrt-cu12' (its libraries download from NVIDIA's "
    "index), on a Jetson JetPack's TensorRT ('sudo apt install python3-libnvinfer')"
)

# onnx-tensorrt's operator matrix: ops its parser refuses (those a vision model could contain).
_UNSUPPORTED = frozenset(
    {
        "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "DynamicQuantizeLinear",
        "Hardmax", "IsInf", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MeanVarianceNormalization",
        "Mod", "Multinomial", "NonZero", "OneHot", "QLinearConv", "QLinearMatMul", "RandomNormal",
        "RandomNormalLike", "RoiAlign", "SequenceAt", "SequenceConstruct", "SequenceEmpty",
        "SequenceErase", "SequenceInsert", "SequenceLength", "Shrink", "SplitToSequence",
        "StringNormalizer", "TfIdfVectorizer", "Unique",
    }
)  # fmt: skip

RUNTIME = BackendSpec(
    name="tensorrt",
    title="TensorRT",
    module="edgeseg.targets.tensorrt.runner",
    class_name="TensorRTBackend",
    requires=("tensorrt",),
    extra="tensorrt",
    # The engine-ready ONNX of a tensorrt bundle (an engine is built and cached for it) or a
    # serialized .engine. First for ONNX: where it is installed (a Jetson, a CUDA server) it is fastest.
    kinds=("onnx", "tensorrt"),
    auto_rank=10,
    packages=("tensorrt", "tensorrt-cu12", "tensorrt-cu11"),
    install_hint=INSTALL_HINT,
    devices=("cuda",),
)

TARGET = Target(
    name="tensorrt",
    title="TensorRT",
    suffixes=(".engine", ".onnx"),
    precisions=("fp32", "fp16", "int8"),
    options=frozenset({"dynamic", "batch", "prepost"}),
    # Exporting writes and verifies the engine-ready ONNX (on CPU, with ONNX Runtime); the engine
    # itself is built where TensorRT and the GPU are (see edgeseg.targets.tensorrt.build).
    requires=(*ONNX_TOOLS, Requirement("onnxruntime", "onnx")),
    backends=("tensorrt",),
    exporter="edgeseg.targets.tensorrt.export",
    reference_backend="onnxruntime",
    runtimes=(RUNTIME,),
    calib_methods=("minmax", "entropy", "percentile"),
    doctor=DoctorRules(
        int8_ops=frozenset({"Conv", "ConvTranspose"}),
        unsupported_ops=_UNSUPPORTED,
        resize=ResizeRules(
            modes=("nearest", "linear"),
            coordinates=(
                "half_pixel",
                "pytorch_half_pixel",
                "tf_half_pixel_for_nn",
                "asymmetric",
                "align_corners",
            ),
            needs_constant_sizes=True,
            rounds_nearest_its_way=True,
        ),
    ),
    colour="tab:green",
)

"""Runtime backends: one model file, one runtime, arrays in and out.

Importing this package is cheap: it registers the built-in backends by name and module path only;
torch, onnxruntime and openvino are imported when a backend of theirs is loaded.

    from edgeseg.runtimes import available_backends, create_backend
    with create_backend("onnxruntime", "model.onnx", intra_op_threads=2) as backend:
        logits = backend.infer({"image": batch})["logits"]
"""

from __future__ import annotations

from edgeseg.runtimes.base import Backend, Outputs, TensorSpec
from edgeseg.runtimes.registry import (
    AUTO_PREFERENCE,
    BackendEntry,
    artifact_kind,
    available_backends,
    backend_entry,
    create_backend,
    get_backend_class,
    register_backend,
    registered_backends,
    resolve_backend,
)

__all__ = [
    "AUTO_PREFERENCE",
    "Backend",
    "BackendEntry",
    "Outputs",
    "TensorSpec",
    "artifact_kind",
    "available_backends",
    "backend_entry",
    "create_backend",
    "get_backend_class",
    "register_backend",
    "registered_backends",
    "resolve_backend",
]

# torch is a core dependency (no extra); the ONNX Runtime and OpenVINO backends come with their extras.
register_backend(
    "torch", "edgeseg.runtimes.torch", "TorchBackend", requires=("torch",), extra=None, kinds=("checkpoint",)
)
register_backend(
    "onnxruntime",
    "edgeseg.runtimes.onnxruntime",
    "OnnxRuntimeBackend",
    requires=("onnxruntime",),
    extra="onnx",
    kinds=("onnx",),
)
register_backend(
    "openvino",
    "edgeseg.runtimes.openvino",
    "OpenVINOBackend",
    requires=("openvino",),
    extra="openvino",
    kinds=("onnx", "openvino"),
)
# TensorRT runs the engine-ready ONNX of a tensorrt bundle (building and caching its engine) or a
# serialized .engine; its package comes from NVIDIA (see edgeseg.errors for what to install).
register_backend(
    "tensorrt",
    "edgeseg.runtimes.tensorrt.runner",
    "TensorRTBackend",
    requires=("tensorrt",),
    extra="tensorrt",
    kinds=("onnx", "tensorrt"),
)

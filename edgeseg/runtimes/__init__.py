"""Runtime backends: one model file, one runtime, arrays in and out.

Importing this package is cheap: backends are registered by name and module path only (the targets'
from their descriptors in edgeseg.targets); torch, onnxruntime and openvino are imported when a
backend of theirs is loaded.

    from edgeseg.runtimes import available_backends, create_backend
    with create_backend("onnxruntime", "model.onnx", intra_op_threads=2) as backend:
        logits = backend.infer({"image": batch})["logits"]
"""

from __future__ import annotations

from edgeseg.runtimes.base import Backend, Outputs, TensorSpec
from edgeseg.runtimes.registry import (
    AUTO_PREFERENCE,
    BackendSpec,
    artifact_kind,
    available_backends,
    backend_choices,
    backend_entry,
    create_backend,
    ensure_installed,
    get_backend_class,
    missing_packages_of,
    register_backend,
    registered_backends,
    resolve_backend,
    throughput_options,
)
from edgeseg.targets import backend_specs

__all__ = [
    "AUTO_PREFERENCE",
    "Backend",
    "BackendSpec",
    "Outputs",
    "TensorSpec",
    "artifact_kind",
    "available_backends",
    "backend_choices",
    "backend_entry",
    "create_backend",
    "ensure_installed",
    "get_backend_class",
    "missing_packages_of",
    "register_backend",
    "registered_backends",
    "resolve_backend",
    "throughput_options",
]

# torch is a core dependency (no extra) and runs checkpoints; the deployment targets' backends are
# registered from their descriptors (edgeseg.targets), in the targets' order.
register_backend(
    BackendSpec(
        name="torch",
        title="PyTorch",
        module="edgeseg.runtimes.torch",
        class_name="TorchBackend",
        requires=("torch",),
        extra=None,
        kinds=("checkpoint",),
        auto_rank=0,
        packages=("torch",),
        devices=("cpu", "cuda"),
    )
)
for _spec in backend_specs():
    register_backend(_spec)

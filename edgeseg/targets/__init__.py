"""Deployment targets, one folder each: `edgeseg/targets/<name>/` holds everything edgeseg knows about
one target (its runtime backend, exporter, quantizer, fused pre/post wrapper, doctor rules, and for
TensorRT the engine builder and cache) and declares it in one descriptor, `TARGET`, in its
`__init__.py` (see edgeseg.targets.spec).

`NAMES` is the registration: adding a target is its folder and its name here. Every table of targets
and backends (edgeseg.formats.TARGETS, the backend registry and what "auto" prefers, the doctor's
rules, install hints, the benchmark card's packages and the report's colours) is derived from the
descriptors below. Importing this package imports the descriptors only: data, nothing heavy.
"""

from __future__ import annotations

import importlib

from edgeseg.targets.spec import BackendSpec, DoctorRules, Requirement, ResizeRules, Target

__all__ = [
    "DESCRIPTORS",
    "NAMES",
    "BackendSpec",
    "DoctorRules",
    "Requirement",
    "ResizeRules",
    "Target",
    "backend_specs",
]

NAMES: tuple[str, ...] = ("onnx", "openvino", "tensorrt", "executorch")

DESCRIPTORS: tuple[Target, ...] = tuple(importlib.import_module(f"{__name__}.{n}").TARGET for n in NAMES)


def backend_specs() -> tuple[BackendSpec, ...]:
    """Every backend that lives in a target's folder, in the targets' order."""
    return tuple(spec for target in DESCRIPTORS for spec in target.runtimes)

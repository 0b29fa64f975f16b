"""The backend registry: backends by name, what each needs installed, and what "auto" picks.

Registering a backend records where its class lives and which packages it needs; nothing is imported
until the backend is used (timm's registry, Polygraphy's lazy imports). `available_backends()` asks
`importlib.util.find_spec`, which finds a package without importing it, so listing backends is cheap
and a missing runtime costs nothing until someone asks for it by name: then the error names the
pip extra to install.

"auto" walks `AUTO_PREFERENCE` for the artifact's kind and takes the first backend that is registered
and installed:

    .onnx          tensorrt > openvino > onnxruntime
    .xml (IR)      openvino
    .engine        tensorrt
    checkpoint     torch

For a bundle, the list keeps only the runtimes its target was exported for (`TARGETS[t].backends`):
an onnx bundle runs on openvino > onnxruntime, a tensorrt bundle's engine-ready ONNX on tensorrt
alone, so without TensorRT "auto" refuses it, naming what to install, rather than running it
elsewhere. `resolve_backend` is the one place this is decided: `Segmenter` calls it (so do `edgeseg
info` for a model file), and the demo, predict, eval and the benchmark go through `Segmenter`.

TensorRT comes first for ONNX because on a machine that has it (a Jetson, a CUDA server) it is the
fastest; it builds (once) and caches an engine for the graph on that GPU (edgeseg.runtimes.tensorrt.runner).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import InputError, MissingDependencyError
from edgeseg.formats import TARGETS

if TYPE_CHECKING:
    from edgeseg.runtimes.base import Backend

__all__ = [
    "AUTO_PREFERENCE",
    "CHECKPOINT_SUFFIXES",
    "BackendEntry",
    "artifact_kind",
    "available_backends",
    "backend_entry",
    "create_backend",
    "get_backend_class",
    "register_backend",
    "registered_backends",
    "resolve_backend",
]

CHECKPOINT_SUFFIXES = (".pt", ".pth")

# Artifact kind -> backends "auto" tries, best first. Kinds are target names from edgeseg.formats
# (the model file's suffix is the target's first suffix) plus "checkpoint".
AUTO_PREFERENCE: dict[str, tuple[str, ...]] = {
    "onnx": ("tensorrt", "openvino", "onnxruntime"),
    "openvino": ("openvino",),
    "tensorrt": ("tensorrt",),
    "checkpoint": ("torch",),
}


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend's class lives and what it needs.

    Attributes:
        name: the `backend=` value.
        module: import path of the module defining the class.
        class_name: the Backend subclass in that module.
        requires: import names of the packages it needs (checked with find_spec, not imported).
        extra: the pip extra that installs them; None for a core dependency (torch).
        kinds: the artifact kinds it runs ("onnx", "openvino", "checkpoint", ...).
    """

    name: str
    module: str
    class_name: str
    requires: tuple[str, ...]
    extra: str | None
    kinds: tuple[str, ...]

    def missing(self) -> list[str]:
        """The required packages that are not installed (imports nothing)."""
        return [pkg for pkg in self.requires if importlib.util.find_spec(pkg) is None]


_REGISTRY: dict[str, BackendEntry] = {}


def register_backend(
    name: str,
    module_path: str,
    class_name: str,
    *,
    requires: tuple[str, ...] = (),
    extra: str | None = None,
    kinds: tuple[str, ...] = (),
) -> BackendEntry:
    """Register (or replace) the backend `name`; nothing is imported."""
    entry = BackendEntry(name, module_path, class_name, tuple(requires), extra, tuple(kinds))
    _REGISTRY[name] = entry
    return entry


def registered_backends() -> list[str]:
    """Every registered backend name, installed or not."""
    return list(_REGISTRY)


def available_backends(kind: str | None = None) -> list[str]:
    """Registered backends whose packages are installed (and that run `kind`, when given)."""
    return [e.name for e in _REGISTRY.values() if (kind is None or kind in e.kinds) and not e.missing()]


def backend_entry(name: str) -> BackendEntry:
    """The registry entry of `name`; InputError listing the registered names for an unknown one."""
    entry = _REGISTRY.get(str(name).strip().lower())
    if entry is None:
        raise InputError(f"unknown backend '{name}'; choose auto or one of: {', '.join(_REGISTRY)}")
    return entry


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the class of backend `name`.

    Raises MissingDependencyError naming the pip extra when a package it needs is not installed.
    """
    entry = backend_entry(name)
    for pkg in entry.missing():
        raise MissingDependencyError(pkg, entry.extra, f"the {entry.name} backend")
    return getattr(importlib.import_module(entry.module), entry.class_name)


def create_backend(name: str, path: str | os.PathLike[str], **options: Any) -> Backend:
    """An unloaded backend `name` for the model at `path`, with backend-specific `options`.

    Options a backend does not take raise InputError listing those it does take.
    """
    cls = get_backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(
            f"the {cls.name} backend does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or 'none'}"
        )
    return cls(path, **options)


def artifact_kind(path: str | os.PathLike[str]) -> str:
    """The kind of a model file, from its suffix: "onnx", "openvino", "tensorrt" or "checkpoint"."""
    suffix = Path(path).suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    # A target's model file carries its first suffix (.xml for the IR, .engine for TensorRT).
    for target in TARGETS.values():
        if suffix == target.suffixes[0]:
            return target.name
    known = sorted({t.suffixes[0] for t in TARGETS.values()} | set(CHECKPOINT_SUFFIXES))
    raise InputError(
        f"'{path}' is not a model edgeseg can run: expected a bundle folder or a file ending in "
        f"{', '.join(known)}"
    )


def resolve_backend(backend: str, kind: str, target: str | None = None) -> str:
    """The backend name to use for an artifact of `kind`: `backend` itself after checking that it
    runs that kind and is installed, or for "auto" the first available in `AUTO_PREFERENCE`.

    `target` is the export target of a bundle's manifest: "auto" then keeps to the runtimes that
    target was made for (a TensorRT bundle's engine-ready ONNX is not silently run by OpenVINO, and
    an ONNX Runtime INT8 graph is not handed to TensorRT, which refuses its asymmetric ranges).
    """
    preference = AUTO_PREFERENCE.get(kind, ())
    if target is not None and target in TARGETS:
        preference = tuple(n for n in preference if n in TARGETS[target].backends)
    if str(backend).strip().lower() == "auto":
        candidates = [name for name in preference if name in _REGISTRY]
        for name in candidates:
            if not _REGISTRY[name].missing():
                return name
        if not candidates:
            raise InputError(f"no backend is registered for {kind} models")
        last = _REGISTRY[candidates[-1]]  # the most widely installable one names its extra
        what = f"running {target} bundles" if target is not None else f"running {kind} models"
        raise MissingDependencyError(last.missing()[0], last.extra, what)
    entry = backend_entry(backend)
    if kind not in entry.kinds:
        runners = [e.name for e in _REGISTRY.values() if kind in e.kinds]
        raise InputError(
            f"the {entry.name} backend cannot run {kind} models; use auto or one of: {', '.join(runners)}"
        )
    for pkg in entry.missing():
        raise MissingDependencyError(pkg, entry.extra, f"the {entry.name} backend")
    return entry.name

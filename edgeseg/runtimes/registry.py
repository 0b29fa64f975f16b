"""The backend registry: backends by name, what each needs installed, and what "auto" picks.

Registering a backend records where its class lives and which packages it needs; nothing is imported
until the backend is used (timm's registry, Polygraphy's lazy imports). `available_backends()` asks
`importlib.util.find_spec`, which finds a package without importing it, so listing backends is cheap
and a missing runtime costs nothing until someone asks for it by name: then the error names the
pip extra to install.

The backends of the deployment targets are registered from their descriptors (edgeseg.targets), the
torch backend for checkpoints by edgeseg.runtimes. "auto" tries the backends that run the artifact's
kind in the order of their `auto_rank` (`AUTO_PREFERENCE`, derived), today:

    .onnx          tensorrt > openvino > onnxruntime
    .xml (IR)      openvino
    .engine        tensorrt
    checkpoint     torch

`resolve_backend` decides which backend runs a model, for every caller (`Segmenter`, and through it
the demo, predict, eval and the benchmark; `edgeseg info`). For a bundle it keeps to the runtimes its
target was exported for (`TARGETS[t].backends`): an onnx bundle runs on openvino > onnxruntime, a
tensorrt bundle's engine-ready ONNX on tensorrt alone, so without TensorRT "auto" refuses it, naming
what to install, rather than running it elsewhere. It also keeps away from a backend that cannot run
a step the graph does itself (`BackendSpec.graph_steps_unsupported`: OpenVINO and an antialiased
resize): "auto" passes it over, an explicit request is refused with what to do.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import InputError, MissingDependencyError
from edgeseg.formats import TARGETS
from edgeseg.targets import BackendSpec

if TYPE_CHECKING:
    from edgeseg.runtimes.base import Backend

__all__ = [
    "AUTO_PREFERENCE",
    "CHECKPOINT_SUFFIXES",
    "BackendSpec",
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

CHECKPOINT_SUFFIXES = (".pt", ".pth")

_REGISTRY: dict[str, BackendSpec] = {}  # filled by edgeseg.runtimes: torch, then the targets' backends

# What "auto" tries per artifact kind, best first: derived from the registered backends' auto_rank.
AUTO_PREFERENCE: dict[str, tuple[str, ...]] = {}


def _derive_preference() -> None:
    kinds = {kind for spec in _REGISTRY.values() for kind in spec.kinds}
    AUTO_PREFERENCE.clear()
    for kind in sorted(kinds):
        runners = sorted((s for s in _REGISTRY.values() if kind in s.kinds), key=lambda s: s.auto_rank)
        AUTO_PREFERENCE[kind] = tuple(s.name for s in runners)


def missing_packages_of(spec: BackendSpec) -> list[str]:
    """The packages `spec` needs that are not installed (imports nothing)."""
    return [pkg for pkg in spec.requires if importlib.util.find_spec(pkg) is None]


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Register (or replace) a backend; nothing is imported. The targets' backends are registered from
    their descriptors; this is for a backend of one's own (and the torch backend)."""
    _REGISTRY[spec.name] = spec
    _derive_preference()
    return spec


def _missing_error(spec: BackendSpec, purpose: str) -> MissingDependencyError:
    return MissingDependencyError(missing_packages_of(spec)[0], spec.extra, purpose, hint=spec.install_hint)


def backend_choices(kind: str | None = None) -> str:
    """The `backend=` choices as help text: "auto, torch, onnxruntime, openvino or tensorrt"."""
    names = ["auto", *(n for n, s in _REGISTRY.items() if kind is None or kind in s.kinds)]
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def registered_backends() -> list[str]:
    """Every registered backend name, installed or not."""
    return list(_REGISTRY)


def available_backends(kind: str | None = None) -> list[str]:
    """Registered backends whose packages are installed (and that run `kind`, when given)."""
    return [
        s.name for s in _REGISTRY.values() if (kind is None or kind in s.kinds) and not missing_packages_of(s)
    ]


def backend_entry(name: str) -> BackendSpec:
    """The registry entry of `name`; InputError listing the registered names for an unknown one."""
    entry = _REGISTRY.get(str(name).strip().lower())
    if entry is None:
        raise InputError(f"unknown backend '{name}'; choose auto or one of: {', '.join(_REGISTRY)}")
    return entry


def ensure_installed(name: str) -> BackendSpec:
    """The entry of backend `name`; MissingDependencyError naming what to install when a package it
    needs is missing (imports nothing)."""
    entry = backend_entry(name)
    if missing_packages_of(entry):
        raise _missing_error(entry, f"the {entry.name} backend")
    return entry


def throughput_options(name: str) -> dict[str, Any]:
    """Backend options of throughput mode for backend `name`: the runtime's own parallelism over the
    frames of a batch (its descriptor's `throughput`), {} for a backend without any."""
    throughput = backend_entry(name).throughput
    return throughput() if throughput is not None else {}


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the class of backend `name`.

    Raises MissingDependencyError naming the pip extra when a package it needs is not installed.
    """
    entry = ensure_installed(name)
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


def resolve_backend(
    backend: str, kind: str, target: str | None = None, graph_steps: tuple[str, ...] = (), where: str = ""
) -> str:
    """The backend name to use for an artifact of `kind`: `backend` itself after checking that it
    runs that kind and is installed, or for "auto" the first available in `AUTO_PREFERENCE`.

    `target` is the export target of a bundle's manifest: "auto" then keeps to the runtimes that
    target was made for (a TensorRT bundle's engine-ready ONNX is not silently run by OpenVINO, and
    an ONNX Runtime INT8 graph is not handed to TensorRT, which refuses its asymmetric ranges).
    `graph_steps` are the pre/post steps the graph does itself (the manifest's `input.graph_steps`):
    "auto" passes over a backend that cannot run one of them as asked, an explicit one is refused
    naming what to do; `where` names the model in that message.
    """
    steps = set(graph_steps)
    preference = AUTO_PREFERENCE.get(kind, ())
    if target is not None and target in TARGETS:
        preference = tuple(n for n in preference if n in TARGETS[target].backends)
    if str(backend).strip().lower() == "auto":
        candidates = [
            n for n in preference if n in _REGISTRY and not steps & _REGISTRY[n].graph_steps_unsupported
        ]
        for name in candidates:
            if not missing_packages_of(_REGISTRY[name]):
                return name
        if not candidates:
            raise InputError(f"no backend is registered for {kind} models")
        last = _REGISTRY[candidates[-1]]  # the most widely installable one names its extra
        raise _missing_error(
            last, f"running {target} bundles" if target is not None else f"running {kind} models"
        )
    entry = backend_entry(backend)
    if kind not in entry.kinds:
        runners = [e.name for e in _REGISTRY.values() if kind in e.kinds]
        raise InputError(
            f"the {entry.name} backend cannot run {kind} models; use auto or one of: {', '.join(runners)}"
        )
    unsupported = sorted(steps & entry.graph_steps_unsupported)
    if unsupported:
        others = [
            n for n in preference if n != entry.name and not steps & _REGISTRY[n].graph_steps_unsupported
        ]
        raise InputError(
            f"model {where or 'given'} does the {', '.join(unsupported)} step inside its graph in a way "
            f"{entry.title} does not honour (an antialiased ONNX Resize); run it with backend="
            f"{' or '.join(repr(o) for o in others) or 'auto'}, or export it again (fused graphs of "
            "this release leave the resize to the host and run on every CPU runtime)"
        )
    return ensure_installed(entry.name).name

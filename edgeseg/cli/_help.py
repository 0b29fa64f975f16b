"""Help texts generated from what the code accepts (the backend registry, the targets' descriptors),
so that `--help` never names a runtime, file kind or choice the code does not take."""

from __future__ import annotations

from edgeseg.formats import TARGETS, exportable_targets
from edgeseg.runtimes.registry import CHECKPOINT_SUFFIXES, backend_choices

__all__ = ["backend_help", "calib_method_help", "model_help", "targets_help"]


def _or(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else "".join(items)


def model_help(what: str = "Model") -> str:
    """'<what>: checkpoint (.pt), bundle folder, .onnx, .xml or .engine.' for every runnable file kind."""
    suffixes = list(dict.fromkeys(t.suffixes[0] for t in TARGETS.values()))
    return f"{what}: checkpoint ({CHECKPOINT_SUFFIXES[0]}), bundle folder, {_or(suffixes)}."


def backend_help() -> str:
    """The `--backend` choices of the registry."""
    return f"{backend_choices()}."


def targets_help() -> str:
    """The `--target` choices."""
    return f"Deployment target: {_or(exportable_targets())} (see the support matrix in the README)."


def calib_method_help() -> str:
    """The `--calib-method` choices and the targets that take each."""
    methods = list(dict.fromkeys(m for t in TARGETS.values() for m in t.calib_methods))
    takers = [t.name for t in TARGETS.values() if len(t.calib_methods) > 1]
    return f"INT8 range estimation: {_or(methods)} ({', '.join(takers)}; the others use their own)."

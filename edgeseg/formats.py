"""The one table of export targets x precisions, read from the targets' descriptors.

The CLI's choices, the validation of export options, the check for missing packages and the README's
support matrix all come from `TARGETS`, built from the descriptors of edgeseg.targets: adding a
precision or an option to a target is one edit in its descriptor. The module imports nothing heavy:
it only describes, and `missing_packages` asks `importlib.util.find_spec`, which finds a package
without importing it (only `module_version`, used once a package is needed anyway, imports).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util

from edgeseg._offline import quiet_telemetry
from edgeseg.errors import InputError, MissingDependencyError
from edgeseg.targets import DESCRIPTORS, Requirement, Target

__all__ = [
    "PRECISIONS",
    "TARGETS",
    "Requirement",
    "Target",
    "ensure_packages",
    "exportable_targets",
    "get_target",
    "missing_packages",
    "module_version",
    "parse_precision",
    "support_matrix_markdown",
    "validate_export_options",
]

# Option names whose command-line flag is spelt otherwise (the rest are `--<name>`).
_FLAGS = {"prepost": "fuse-prepost"}

# Every precision edgeseg knows, in the order tables list them.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


# Derived from the descriptors in edgeseg/targets/<name>/__init__.py, in their registration order.
TARGETS: dict[str, Target] = {t.name: t for t in DESCRIPTORS}


def get_target(name: str) -> Target:
    """The target called `name`; InputError listing the choices for an unknown one."""
    target = TARGETS.get(str(name).strip().lower())
    if target is None:
        raise InputError(f"unknown target '{name}'; choose from {', '.join(TARGETS)}")
    return target


def parse_precision(precision: str, where: str = "") -> str:
    """The precision named by `precision` ("FP16 " -> "fp16"); InputError listing the choices. `where`
    says where the value came from in the message (e.g. "in --targets 'onnx:fp8'")."""
    prec = str(precision).strip().lower()
    if prec not in PRECISIONS:
        place = f" {where}" if where else ""
        raise InputError(f"unknown precision '{precision}'{place}; choose from {', '.join(PRECISIONS)}")
    return prec


def exportable_targets() -> list[str]:
    """Names of the targets `edgeseg export` accepts now (the CLI's choices)."""
    return [t.name for t in TARGETS.values() if t.exportable]


def validate_export_options(
    target: str | Target,
    precision: str,
    *,
    dynamic: bool = False,
    batch: bool = False,
    prepost: bool = False,
) -> Target:
    """Check that `target` can be exported at `precision` with the given options; returns the Target.

    Raises InputError naming the option or precision and what is available instead.
    """
    tgt = target if isinstance(target, Target) else get_target(target)
    if not tgt.exportable:
        raise InputError(
            f"target {tgt.name} cannot be exported yet; exportable targets: {', '.join(exportable_targets())}"
        )
    prec = parse_precision(precision)
    if prec not in tgt.precisions:
        raise InputError(
            f"precision {prec} is not available for target {tgt.name} yet; "
            f"available: {', '.join(tgt.precisions)}"
        )
    # One entry per option: a new option is one more line here and one more name in Target.options.
    given = {"dynamic": dynamic, "batch": batch, "prepost": prepost}
    for option, value in given.items():
        if value and option not in tgt.options:
            raise InputError(f"--{_FLAGS.get(option, option)} is not supported for target {tgt.name}")
    return tgt


def missing_packages(target: str | Target) -> list[str]:
    """Import names of the packages an export to `target` needs that are not installed (imports nothing)."""
    tgt = target if isinstance(target, Target) else get_target(target)
    return [req.module for req in tgt.requires if importlib.util.find_spec(req.module) is None]


def module_version(module: str) -> str:
    """The version an installed package reports; imports it (the one helper here that does), because
    the distribution may be named otherwise than the module (onnxruntime-gpu provides onnxruntime)."""
    if module in ("openvino", "nncf"):
        quiet_telemetry()  # importing them would otherwise start their usage telemetry
    version = getattr(importlib.import_module(module), "__version__", None)
    if version is None:  # a namespace package (executorch): its distribution's version
        try:
            version = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


def ensure_packages(target: str | Target, purpose: str | None = None) -> None:
    """Raise MissingDependencyError naming the pip extra when a package `target` needs is missing."""
    tgt = target if isinstance(target, Target) else get_target(target)
    missing = set(missing_packages(tgt))
    for req in tgt.requires:
        if req.module in missing:
            raise MissingDependencyError(
                req.module, req.extra, purpose or f"exporting to {tgt.name}", hint=req.hint
            )


def support_matrix_markdown() -> str:
    """The support matrix as a Markdown table (the README's copy is generated from this)."""
    header = ["target", "files", *PRECISIONS, "options", "install", "runs on"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for t in TARGETS.values():
        cells = [f"`{t.name}` ({t.title})", " ".join(f"`{s}`" for s in t.suffixes)]
        for prec in PRECISIONS:
            cells.append("yes" if prec in t.precisions else "planned" if prec in t.planned else "-")
        cells.append(", ".join(f"`--{_FLAGS.get(o, o)}`" for o in sorted(t.options)) or "-")
        extras = sorted({r.extra for r in t.requires})
        cells.append(f"`pip install 'edgeseg[{','.join(extras)}]'`")
        cells.append(", ".join(t.backends))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

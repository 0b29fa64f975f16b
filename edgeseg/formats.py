"""The one table of export targets x precisions.

The CLI's choices, the validation of export options, the check for missing packages and the README's
support matrix all come from `TARGETS`, so adding a precision or an option to a target is one edit
here. The module imports nothing heavy: it only describes, and `missing_packages` asks
`importlib.util.find_spec`, which finds a package without importing it (only `module_version`,
used once a package is needed anyway, imports).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from edgeseg.errors import InputError, MissingDependencyError

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
    "support_matrix_markdown",
    "validate_export_options",
]

# Option names whose command-line flag is spelt otherwise (the rest are `--<name>`).
_FLAGS = {"prepost": "fuse-prepost"}

# Every precision edgeseg knows, in the order tables list them.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Requirement:
    """A Python package an export needs: the name it is imported by and the pip extra that installs it."""

    module: str
    extra: str


@dataclass(frozen=True)
class Target:
    """One deployment target and what edgeseg can do with it today.

    Attributes:
        name: the `--target` value.
        title: the runtime's name for people.
        suffixes: the suffixes of the files an export writes, the model file's first.
        precisions: the precisions that can be exported now.
        planned: precisions that will come (listed in the docs, refused by the exporter).
        options: export options the target accepts besides the precision (e.g. "dynamic").
        requires: packages the export needs (the exporter itself and the parity check's runtime).
        backends: runtime backends that can run the exported files.
        exporter: the module that writes the target's files; None while the target is not exportable.
        reference_backend: the backend that runs the exported model file on CPU for parity and
            accuracy checks; None for the first of `backends`.
    """

    name: str
    title: str
    suffixes: tuple[str, ...]
    precisions: tuple[str, ...]
    planned: tuple[str, ...]
    options: frozenset[str]
    requires: tuple[Requirement, ...]
    backends: tuple[str, ...]
    exporter: str | None
    reference_backend: str | None = None

    @property
    def exportable(self) -> bool:
        """Whether `edgeseg export` can write this target now."""
        return self.exporter is not None and bool(self.precisions)


_ONNX_TOOLS = (
    Requirement("onnx", "onnx"),
    Requirement("onnxscript", "onnx"),  # torch's dynamo ONNX exporter is built on it
)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            name="onnx",
            title="ONNX Runtime",
            suffixes=(".onnx",),
            precisions=("fp32", "fp16", "int8"),
            planned=(),
            options=frozenset({"dynamic", "prepost"}),
            requires=(*_ONNX_TOOLS, Requirement("onnxruntime", "onnx")),
            backends=("onnxruntime", "openvino"),
            exporter="edgeseg.exporters.onnx",
        ),
        Target(
            name="openvino",
            title="OpenVINO",
            suffixes=(".xml", ".bin"),
            precisions=("fp32", "fp16", "int8"),
            planned=(),
            options=frozenset({"dynamic", "prepost"}),
            # The IR is converted from the exported ONNX graph, so the ONNX tools are needed too.
            requires=(*_ONNX_TOOLS, Requirement("openvino", "openvino")),
            backends=("openvino",),
            exporter="edgeseg.exporters.openvino",
        ),
        Target(
            name="tensorrt",
            title="TensorRT",
            suffixes=(".engine", ".onnx"),
            precisions=("fp32", "fp16", "int8"),
            planned=(),
            options=frozenset({"dynamic", "batch", "prepost"}),
            # Exporting writes and verifies the engine-ready ONNX (on CPU, with ONNX Runtime); the engine
            # itself is built where TensorRT and the GPU are (see edgeseg.runtimes.tensorrt.build).
            requires=(*_ONNX_TOOLS, Requirement("onnxruntime", "onnx")),
            backends=("tensorrt",),
            exporter="edgeseg.exporters.tensorrt",
            reference_backend="onnxruntime",
        ),
    )
}


def get_target(name: str) -> Target:
    """The target called `name`; InputError listing the choices for an unknown one."""
    target = TARGETS.get(str(name).strip().lower())
    if target is None:
        raise InputError(f"unknown target '{name}'; choose from {', '.join(TARGETS)}")
    return target


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
    prec = str(precision).strip().lower()
    if prec not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}'; choose from {', '.join(PRECISIONS)}")
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
        from edgeseg._offline import quiet_telemetry

        quiet_telemetry()  # importing them would otherwise start their usage telemetry
    return str(getattr(importlib.import_module(module), "__version__", "unknown"))


def ensure_packages(target: str | Target, purpose: str | None = None) -> None:
    """Raise MissingDependencyError naming the pip extra when a package `target` needs is missing."""
    tgt = target if isinstance(target, Target) else get_target(target)
    missing = set(missing_packages(tgt))
    for req in tgt.requires:
        if req.module in missing:
            raise MissingDependencyError(req.module, req.extra, purpose or f"exporting to {tgt.name}")


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

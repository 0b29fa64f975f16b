"""What a deployment target is to edgeseg: the descriptor each `edgeseg/targets/<name>/__init__.py`
declares, and the descriptor of a runtime backend that lives in a target's folder.

Every table of targets or backends elsewhere (the format table, the backend registry and what "auto"
prefers, the doctor's per-target rules, install hints, the benchmark card's package names, the
report's colours, the CLI's help) is derived from these descriptors: adding a target is its folder
and one name in `edgeseg.targets.NAMES`. A descriptor is data: it names its modules by import path and
imports nothing heavy, so reading every descriptor costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BackendSpec", "DoctorRules", "Requirement", "ResizeRules", "Target"]


@dataclass(frozen=True)
class Requirement:
    """A Python package an export needs: the name it is imported by and the pip extra that installs it.

    `hint` replaces "pip install 'edgeseg[extra]'" in the error for a package whose libraries do not
    come from PyPI (TensorRT)."""

    module: str
    extra: str
    hint: str | None = None


@dataclass(frozen=True)
class ResizeRules:
    """How a runtime's ONNX parser treats Resize: the modes and coordinate transformations it takes
    (None: every one), whether it needs output sizes that fold to constants when it compiles, and
    whether it rounds nearest-neighbour source coordinates its own way."""

    modes: tuple[str, ...] | None = None
    coordinates: tuple[str, ...] | None = None
    needs_constant_sizes: bool = False
    rounds_nearest_its_way: bool = False


@dataclass(frozen=True)
class DoctorRules:
    """The export doctor's knowledge of one target (the checks themselves are shared).

    Attributes:
        int8_ops: the ops its INT8 export quantizes (a heavy op outside the set stays in float).
        contrib_ops: whether it runs ONNX Runtime's com.microsoft contrib ops.
        unsupported_ops: ONNX ops its parser refuses.
        resize: its Resize rules.
    """

    int8_ops: frozenset[str] = frozenset()
    contrib_ops: bool = False
    unsupported_ops: frozenset[str] = frozenset()
    resize: ResizeRules = field(default_factory=ResizeRules)


@dataclass(frozen=True)
class BackendSpec:
    """A runtime backend: where its class lives and what it needs (nothing is imported until used).

    Attributes:
        name: the `backend=` value.
        title: the runtime's name for people.
        module: import path of the module defining the class; class_name: the Backend subclass.
        requires: import names of the packages it needs (checked with find_spec, not imported).
        extra: the pip extra that installs them; None for a core dependency (torch).
        kinds: the artifact kinds it runs (target names, whose model file carries the target's first
            suffix, or "checkpoint").
        auto_rank: its place in what "auto" tries for a kind, lowest first.
        packages: distribution names whose versions the benchmark card records (the first installed).
        install_hint: what to install instead of the pip extra (libraries not on PyPI).
        throughput: backend options of throughput mode (the runtime's own parallelism over a batch).
        graph_steps_unsupported: fused pre/post steps it cannot run as the graph asks
            ("resize": an antialiased ONNX Resize).
        peak: "module:function" giving what times the benchmark's ceiling graph on this runtime:
            `peak(model_bytes, x, precision) -> (call, kernels) | None`, None where the runtime does
            not compute that precision natively on this machine; `kernels` names the kernels it
            chose where the runtime says ("" otherwise).
        devices: the devices it runs models on, the one it needs or uses by default first ("cuda"
            for TensorRT, whose engines exist only on a GPU).
    """

    name: str
    title: str
    module: str
    class_name: str
    requires: tuple[str, ...]
    extra: str | None
    kinds: tuple[str, ...]
    auto_rank: int
    packages: tuple[str, ...] = ()
    install_hint: str | None = None
    throughput: Callable[[], dict[str, Any]] | None = None
    graph_steps_unsupported: frozenset[str] = frozenset()
    peak: str | None = None
    devices: tuple[str, ...] = ("cpu",)


@dataclass(frozen=True)
class Target:
    """One deployment target and what edgeseg can do with it.

    Attributes:
        name: the `--target` value (and the artifact kind of its model file).
        title: the runtime's name for people.
        suffixes: the suffixes of the files an export writes, the model file's first.
        precisions: the precisions that can be exported now.
        planned: precisions that will come (listed in the docs, refused by the exporter).
        options: export options the target accepts besides the precision (e.g. "dynamic").
        requires: packages the export needs (the exporter itself and the parity check's runtime).
        backends: runtime backends that can run the exported files, the target's own runtime first.
        exporter: the module that writes the target's files (`export_artifact(job)`).
        reference_backend: the backend that runs the exported model file on CPU for parity and
            accuracy checks; None for the first of `backends`.
        runtimes: the backends whose code lives in this target's folder.
        calib_methods: the INT8 range estimators `--calib-method` may choose for this target.
        doctor: the export doctor's rules for this target.
        colour: its colour in the benchmark's picture (a matplotlib colour name).
        packages: distribution names of the export tools whose versions the benchmark card records.
        runtime_precisions: precisions its runtime computes an fp32 bundle at when asked, with the
            backend options that ask (e.g. {"bf16": {"inference_precision": "bf16"}}): no export
            of their own, recorded in every fp32 bundle's manifest, and benchmarked as rows of
            their own on CPUs that compute them natively.
    """

    name: str
    title: str
    suffixes: tuple[str, ...]
    precisions: tuple[str, ...]
    options: frozenset[str]
    requires: tuple[Requirement, ...]
    backends: tuple[str, ...]
    exporter: str | None
    planned: tuple[str, ...] = ()
    reference_backend: str | None = None
    runtimes: tuple[BackendSpec, ...] = ()
    calib_methods: tuple[str, ...] = ()
    doctor: DoctorRules = field(default_factory=DoctorRules)
    colour: str = "tab:gray"
    packages: tuple[str, ...] = ()
    runtime_precisions: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)

    @property
    def exportable(self) -> bool:
        """Whether `edgeseg export` can write this target now."""
        return self.exporter is not None and bool(self.precisions)

    @property
    def parity_backend(self) -> str:
        """The backend that runs this target's model file on CPU for parity and accuracy checks."""
        return self.reference_backend or self.backends[0]

"""Build TensorRT engines from engine-ready ONNX, on the device that runs them, and cache them.

An engine is tied to the TensorRT version and the GPU that built it, so it is built where it runs:
by `edgeseg export` when TensorRT and a CUDA device are present, else on first load or by
`edgeseg build-engine BUNDLE` on the device. Engines are cached beside the ONNX under a name that
carries the TensorRT version, the GPU's compute capability and the precision
(`model.trt10.3.0.sm87.int8.engine`), with a JSON record next to it; a cached engine is reused only
when its record matches this TensorRT, this GPU and the sha256 of the ONNX it was built from.

The TensorRT calls follow the Python API of 10.3 (JetPack 6) through 11.x: a STRONGLY_TYPED network
(required on 10.x, ignored on 11.x; no FP16/INT8 flags, no calibrators), `OnnxParser.parse_from_file`,
`set_memory_pool_limit(WORKSPACE)`, an optimisation profile, optional VERSION_COMPATIBLE and
AMPERE_PLUS hardware compatibility, `build_serialized_network`, an `IProgressMonitor` for progress.
`tensorrt` is imported inside functions only; GPU facts come from torch (a core dependency).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeseg._io import atomic_path, write_json
from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError
from edgeseg.manifest import Manifest

__all__ = [
    "BuildOptions",
    "Device",
    "Profile",
    "build_engine",
    "cache_name",
    "check_writable",
    "cuda_device",
    "engine_unavailable_reason",
    "find_cached",
    "import_tensorrt",
]


@dataclass(frozen=True)
class BuildOptions:
    """Builder settings. `workspace_mib` caps TensorRT's scratch memory; `version_compatible` builds
    an engine later TensorRT releases (same major) can run, `hardware_compatible` one any Ampere or
    newer GPU can run (both may cost speed; hardware compatibility is not available on Jetson)."""

    workspace_mib: int = 1024
    version_compatible: bool = False
    hardware_compatible: bool = False

    def __post_init__(self) -> None:
        if self.workspace_mib < 16:
            raise InputError(f"the workspace limit must be at least 16 MiB; got {self.workspace_mib}")


@dataclass(frozen=True)
class Profile:
    """The optimisation profile of the network input: min/opt/max NCHW shapes the engine accepts."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(str(data["input"]), *(tuple(int(v) for v in data[k]) for k in ("min", "opt", "max")))

    def contains(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of `shape` is inside [min, max] on every axis."""
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for s, lo, hi in zip(shape, self.min, self.max, strict=True)
        )

    @classmethod
    def for_input(
        cls, name: str, channels: int, size_wh: tuple[int, int], stride: int, dynamic: bool, batch: int
    ) -> Profile:
        """Static: the export shape with batch 1. Dynamic: batch 1..`batch` (opt 1: a camera frame),
        sides from half to twice the export size in multiples of `stride` (opt: the export size)."""
        w, h = size_wh
        if not dynamic:
            shape = (1, channels, h, w)
            return cls(name, shape, shape, shape)

        def half(v: int) -> int:
            return max(stride, v // 2 // stride * stride)

        return cls(
            name, (1, channels, half(h), half(w)), (1, channels, h, w), (batch, channels, 2 * h, 2 * w)
        )


@dataclass(frozen=True)
class Device:
    """The CUDA device an engine is built for: name, compute capability "8.7", CUDA version."""

    index: int
    name: str
    compute_capability: str
    cuda: str

    @property
    def sm(self) -> str:
        return "sm" + self.compute_capability.replace(".", "")


def import_tensorrt(purpose: str = "the tensorrt backend") -> Any:
    """`import tensorrt`, or MissingDependencyError saying how to install it on x86 and on Jetson."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError("tensorrt", "tensorrt", purpose) from exc
    return tensorrt


def cuda_device(index: int = 0) -> Device:
    """Facts about CUDA device `index`, via torch; EdgesegRuntimeError when there is none."""
    import torch

    if not torch.cuda.is_available():
        build = f"torch {torch.__version__} " + ("with" if torch.version.cuda else "without") + " CUDA"
        raise EdgesegRuntimeError(
            f"TensorRT needs a CUDA device and {build} sees none; on a Jetson install JetPack's CUDA "
            "build of torch, on x86 the CUDA build matching your driver"
        )
    if not 0 <= index < torch.cuda.device_count():
        raise InputError(f"no CUDA device {index}; this machine has {torch.cuda.device_count()}")
    major, minor = torch.cuda.get_device_capability(index)
    return Device(index, torch.cuda.get_device_name(index), f"{major}.{minor}", str(torch.version.cuda))


def engine_unavailable_reason() -> str | None:
    """Why no engine can be built here ("TensorRT is not installed", "no CUDA device"), or None."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed"
    import torch

    return None if torch.cuda.is_available() else "no CUDA device"


def cache_name(stem: str, trt_version: str, device: Device, precision: str) -> str:
    """`model.trt10.3.0.sm87.int8.engine`: what a cached engine is valid for, readable in its name."""
    return f"{stem}.trt{trt_version}.{device.sm}.{precision}.engine"


def _record_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def _compatible(record: dict[str, Any], trt_version: str, device: Device, onnx_sha: str) -> bool:
    """Whether a cached engine's record says it runs with this TensorRT on this GPU for this ONNX."""
    if record.get("onnx_sha256") != onnx_sha:
        return False
    built = str(record.get("tensorrt", ""))
    same_version = built == trt_version
    # A version-compatible engine runs on later releases of the same major version.
    later_same_major = (
        bool(record.get("version_compatible"))
        and built.split(".")[0] == trt_version.split(".")[0]
        and _version_key(built) <= _version_key(trt_version)
    )
    same_gpu = record.get("compute_capability") == device.compute_capability
    ampere = _version_key(device.compute_capability) >= (8, 0)
    ampere_plus = bool(record.get("hardware_compatible")) and ampere
    return (same_version or later_same_major) and (same_gpu or ampere_plus)


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def find_cached(
    cache_dir: Path, stem: str, precision: str, trt_version: str, device: Device, onnx_sha: str
) -> tuple[Path, dict[str, Any]] | None:
    """A cached engine valid here: the exact name first, then any compatible engine's record."""
    exact = cache_dir / cache_name(stem, trt_version, device, precision)
    candidates = [exact, *sorted(p for p in cache_dir.glob(f"{stem}.trt*.{precision}.engine") if p != exact)]
    for engine in candidates:
        try:
            record = json.loads(_record_path(engine).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # no record (or unreadable): its provenance is unknown, so it is not used
        if (
            engine.is_file()
            and record.get("precision") == precision
            and _compatible(record, trt_version, device, onnx_sha)
        ):
            return engine, record
    return None


class _Progress:
    """Reports builder phases as lines through `log` (TensorRT calls it from its threads)."""

    def __init__(self, trt: Any, log: Callable[[str], None]) -> None:
        base = trt.IProgressMonitor

        class Monitor(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                base.__init__(self)  # TensorRT's docs require the explicit base __init__

            def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
                if parent_phase is None:  # top-level phases only: nested ones are too chatty
                    log(f"tensorrt: {phase_name} ({num_steps} steps)")

            def step_complete(self, phase_name: str, step: int) -> bool:
                return True  # False would cancel the build

            def phase_finish(self, phase_name: str) -> None:
                pass

        self.monitor = Monitor()


def _logger(trt: Any, errors: list[str]) -> Any:
    """A TensorRT logger that keeps error messages for the exception and prints warnings."""
    base = trt.ILogger

    class Logger(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if severity in (base.Severity.INTERNAL_ERROR, base.Severity.ERROR):
                errors.append(msg)

    return Logger()


def build_engine(
    onnx_path: Path,
    engine_dir: Path,
    *,
    precision: str,
    profile: Profile | None,
    options: BuildOptions = BuildOptions(),
    device_index: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Path, dict[str, Any]]:
    """Build an engine for this GPU from `onnx_path` into `engine_dir` (atomically), with its record.

    Raises InputError when TensorRT cannot parse the graph (every parser error in the message),
    EdgesegRuntimeError when the build fails, MissingDependencyError without TensorRT.
    """
    from edgeseg.manifest import sha256_file

    trt = import_tensorrt("building a TensorRT engine")
    device = cuda_device(device_index)
    errors: list[str] = []
    logger = _logger(trt, errors)
    builder = trt.Builder(logger)
    # STRONGLY_TYPED: required on 10.x for graph-typed precision; 11.x always is and ignores it.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        found = [str(parser.get_error(i)) for i in range(parser.num_errors)] or errors
        raise InputError(f"TensorRT {trt.__version__} cannot parse '{onnx_path}': " + " | ".join(found))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if profile is not None:
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(profile.input, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(opt_profile)
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: TF32 rounds inputs to 10 bits
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if options.hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    progress = _Progress(trt, log)
    config.progress_monitor = progress.monitor
    log(f"building the TensorRT {trt.__version__} {precision} engine for {device.name} ({device.sm}); "
        "this takes a while once, the engine is cached")  # fmt: skip
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        reason = " | ".join(errors) or "no reason given"
        raise EdgesegRuntimeError(f"TensorRT could not build an engine from '{onnx_path}': {reason}")
    engine = engine_dir / cache_name(onnx_path.stem, trt.__version__, device, precision)
    record = {
        "file": engine.name,
        "tensorrt": trt.__version__,
        "gpu": device.name,
        "compute_capability": device.compute_capability,
        "cuda": device.cuda,
        "precision": precision,
        "profile": profile.to_dict() if profile else None,
        "onnx_file": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        **asdict(options),
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_path(engine) as tmp:
        tmp.write_bytes(memoryview(plan))
    write_json(_record_path(engine), record)
    return engine, record


def check_writable(folder: Path) -> None:
    """InputError when engines cannot be cached in `folder`, so a rebuild is not silently repeated
    on every start."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot cache TensorRT engines in '{folder}' (not writable): every start would rebuild the "
            "engine; pass engine_cache=DIR (Segmenter) or run 'edgeseg build-engine BUNDLE --cache DIR' "
            "once as a user who can write there"
        )


DEFAULT_BATCH = 8  # largest batch of a dynamic engine's profile unless --batch says otherwise


def profile_of(manifest: Manifest, batch: int | None = None) -> Any:
    """The optimisation profile for the input `manifest` describes (static: its one shape)."""
    inp = manifest.input
    return Profile.for_input(
        inp.name,
        inp.channels,
        (inp.width, inp.height),
        inp.size_multiple,
        bool(manifest.dynamic_axes),
        batch or DEFAULT_BATCH,
    )

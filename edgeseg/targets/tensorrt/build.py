"""Build TensorRT engines from engine-ready ONNX, on the device that runs them.

An engine is tied to the TensorRT version and the GPU that built it, so it is built where it runs:
by `edgeseg export` when TensorRT and a CUDA device are present, else on first load or by
`edgeseg build-engine BUNDLE` on the device; it is cached beside the ONNX (naming and reuse rules in
edgeseg.targets.tensorrt.cache). The build runs with the target GPU selected
(edgeseg.targets.tensorrt.device.selected): TensorRT builds for the current CUDA device.

The TensorRT calls follow the Python API of 10.3 (JetPack 6) through 11.x, checked against both
versions' bindings by tests/runtimes/test_tensorrt_api.py: a STRONGLY_TYPED network (required on
10.x, ignored on 11.x; no FP16/INT8 flags, no calibrators), `OnnxParser.parse_from_file`,
`set_memory_pool_limit(WORKSPACE)`, an optimisation profile, optional VERSION_COMPATIBLE and
AMPERE_PLUS hardware compatibility, `build_serialized_network`, an `IProgressMonitor` for progress.
`tensorrt` is imported inside functions only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeseg._io import atomic_path, write_json
from edgeseg._reuse import reuse_key
from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError
from edgeseg.manifest import Manifest, sha256_file
from edgeseg.targets.tensorrt.cache import BuildOptions, cache_name, engine_settings, record_path
from edgeseg.targets.tensorrt.device import cuda_device, selected

__all__ = [
    "BuildOptions",
    "Profile",
    "build_engine",
    "engine_unavailable_reason",
    "import_tensorrt",
    "profile_of",
]


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


def import_tensorrt(purpose: str = "the tensorrt backend") -> Any:
    """`import tensorrt`, or MissingDependencyError saying how to install it on x86 and on Jetson."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError("tensorrt", "tensorrt", purpose) from exc
    return tensorrt


def engine_unavailable_reason() -> str | None:
    """Why no engine can be built here ("TensorRT is not installed", "no CUDA device"), or None."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed"
    import torch

    return None if torch.cuda.is_available() else "no CUDA device"


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


def _build_plan(
    trt: Any,
    onnx_path: Path,
    precision: str,
    profile: Profile | None,
    options: BuildOptions,
    log: Callable[[str], None],
) -> Any:
    """Parse `onnx_path` and build a serialized engine on the current CUDA device (the caller
    selects it); InputError when the graph does not parse, EdgesegRuntimeError when the build fails."""
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
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        reason = " | ".join(errors) or "no reason given"
        raise EdgesegRuntimeError(f"TensorRT could not build an engine from '{onnx_path}': {reason}")
    return plan


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
    """Build an engine for CUDA device `device_index` from `onnx_path` into `engine_dir`
    (atomically), with its record.

    Raises InputError when TensorRT cannot parse the graph (every parser error in the message),
    EdgesegRuntimeError when the build fails, MissingDependencyError without TensorRT.
    """

    trt = import_tensorrt("building a TensorRT engine")
    device = cuda_device(device_index)
    log(f"building the TensorRT {trt.__version__} {precision} engine for {device.name} ({device.sm}); "
        "this takes a while once, the engine is cached")  # fmt: skip
    start = time.perf_counter()
    with selected(device.index):  # TensorRT builds for the current device, not for cuda:N
        plan = _build_plan(trt, onnx_path, precision, profile, options, log)
    engine = engine_dir / cache_name(onnx_path.stem, trt.__version__, device, precision)
    onnx_sha = sha256_file(onnx_path)
    settings = engine_settings(onnx_sha, precision, profile.to_dict() if profile else None, options)
    record = {
        "file": engine.name,
        "tensorrt": trt.__version__,
        "gpu": device.name,
        "compute_capability": device.compute_capability,
        "cuda": device.cuda,
        "precision": precision,
        "profile": profile.to_dict() if profile else None,
        "onnx_file": onnx_path.name,
        "onnx_sha256": onnx_sha,
        **asdict(options),
        "build_seconds": round(time.perf_counter() - start, 1),
        "reuse_key": reuse_key(settings),  # reused only for the same settings (cache.find_cached)
    }
    with atomic_path(engine) as tmp:
        tmp.write_bytes(memoryview(plan))
    write_json(record_path(engine), record)
    return engine, record


DEFAULT_BATCH = 8  # largest batch of a dynamic engine's profile unless --batch says otherwise


# Frames a graph with pre/post inside accepts: any camera size up to 4K (opt: 640x480, a webcam's).
FRAME_MIN, FRAME_OPT, FRAME_MAX = (16, 16), (480, 640), (2160, 3840)


def profile_of(manifest: Manifest, batch: int | None = None) -> Any:
    """The optimisation profile for the input `manifest` describes (static: its one shape). A graph
    that takes frames (NHWC uint8, pre/post inside) gets frame sizes FRAME_MIN..FRAME_MAX, batch 1
    unless the export is dynamic."""
    inp = manifest.input
    if inp.layout == "NHWC":
        top = (batch or DEFAULT_BATCH) if 0 in manifest.dynamic_axes.get(inp.name, {}) else 1
        c = inp.channels
        return Profile(inp.name, (1, *FRAME_MIN, c), (1, *FRAME_OPT, c), (top, *FRAME_MAX, c))
    return Profile.for_input(
        inp.name,
        inp.channels,
        (inp.width, inp.height),
        inp.size_multiple,
        bool(manifest.dynamic_axes),
        batch or DEFAULT_BATCH,
    )

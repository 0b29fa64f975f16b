"""Where built engines are cached and when a cached one may be reused.

An engine is tied to the TensorRT version and the GPU that built it. Engines are cached beside the
ONNX under a name that carries the TensorRT version, the GPU's compute capability and the precision
(`model.trt10.3.0.sm87.int8.engine`), with a JSON record next to it; a cached engine is reused only
when its record matches this TensorRT and this GPU (version- and hardware-compatible engines also on
later releases of the same major / any Ampere+ GPU) and its reuse key is the key of what is asked
now (`engine_settings`: the sha256 of the ONNX, the precision, the optimisation profile and every
builder option, edgeseg._reuse), so an engine cached for another profile, batch or option, or from
another ONNX that happens to share the name, is rebuilt rather than reused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg._records import Record
from edgeseg._reuse import reuse_key, settings_of
from edgeseg.errors import InputError
from edgeseg.targets.tensorrt.device import Device

__all__ = [
    "BuildOptions",
    "cache_name",
    "check_writable",
    "engine_settings",
    "find_cached",
    "read_profile",
    "read_record",
    "record_path",
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


def engine_settings(
    onnx_sha: str, precision: str, profile: Mapping[str, Any] | None, options: Any
) -> dict[str, Any]:
    """What shapes an engine besides TensorRT and the GPU: the ONNX's content, the precision, the
    optimisation profile (`Profile.to_dict()`, None for the graph's own shapes) and every field of
    the builder options (`BuildOptions`, so a new option is part of the key without more code)."""
    return {
        "onnx_sha256": onnx_sha,
        "precision": precision,
        "profile": dict(profile) if profile is not None else None,
        "options": settings_of(options),
    }


def cache_name(stem: str, trt_version: str, device: Device, precision: str) -> str:
    """`model.trt10.3.0.sm87.int8.engine`: what a cached engine is valid for, readable in its name."""
    return f"{stem}.trt{trt_version}.{device.sm}.{precision}.engine"


def record_path(engine: Path) -> Path:
    """The JSON build record beside an engine."""
    return engine.with_suffix(".json")


def read_profile(r: Record, key: str = "profile") -> dict[str, Any] | None:
    """An optimisation profile as a record holds it ({"input", "min", "opt", "max"}), validated:
    one input name and three shapes of the same rank with 1 <= min <= opt <= max; None when absent."""
    p = r.sub(key, default=None)
    if p is None:
        return None
    p.text("input")
    shapes = [p.numbers(k, minimum=1, maximum=1 << 20) for k in ("min", "opt", "max")]
    if any(not float(v).is_integer() for shape in shapes for v in shape):
        r.fail(key, "a shape that is not whole numbers")
    if len({len(shape) for shape in shapes}) != 1 or not all(
        lo <= o <= hi for lo, o, hi in zip(*shapes, strict=True)
    ):
        r.fail(key, "shapes that are no range (min <= opt <= max, one rank)")
    return dict(p.data)


def read_record(path: Path) -> dict[str, Any]:
    """An engine's build record, validated: what it was built with and for (RecordError, one line,
    for any other shape: the record decides whether an engine is reused, so it is not guessed at)."""
    r = Record.read(path, f"engine record '{path}'", "delete it and its engine to build the engine again")
    for key in ("tensorrt", "compute_capability", "precision", "onnx_sha256"):
        r.text(key)
    for key in ("file", "gpu", "cuda", "onnx_file", "reuse_key"):
        r.text(key, default=None)
    for key in ("version_compatible", "hardware_compatible"):
        r.boolean(key, default=False)
    r.integer("workspace_mib", minimum=16, default=None)
    r.number("build_seconds", minimum=0.0, default=None)
    read_profile(r)
    return dict(r.data)


def _compatible(record: dict[str, Any], trt_version: str, device: Device) -> bool:
    """Whether a cached engine's record says it runs with this TensorRT on this GPU."""
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
    cache_dir: Path,
    stem: str,
    precision: str,
    trt_version: str,
    device: Device,
    onnx_sha: str,
    *,
    profile: Mapping[str, Any] | None = None,
    options: Any = None,
) -> tuple[Path, dict[str, Any]] | None:
    """A cached engine valid here for `engine_settings(onnx_sha, precision, profile, options)`
    (`options` default: `BuildOptions()`): the exact name first, then any compatible engine's record."""
    if options is None:
        options = BuildOptions()
    key = reuse_key(engine_settings(onnx_sha, precision, profile, options))
    exact = cache_dir / cache_name(stem, trt_version, device, precision)
    candidates = [exact, *sorted(p for p in cache_dir.glob(f"{stem}.trt*.{precision}.engine") if p != exact)]
    for engine in candidates:
        if not record_path(engine).is_file():
            continue  # no record: its provenance is unknown, so it is not used
        record = read_record(record_path(engine))
        if (
            isinstance(record, dict)
            and engine.is_file()
            and record.get("reuse_key") == key
            and _compatible(record, trt_version, device)
        ):
            return engine, record
    return None


def check_writable(folder: Path) -> None:
    """InputError when engines cannot be cached in `folder`, so a rebuild is not silently repeated
    on every start."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot cache TensorRT engines in '{folder}' (not writable): every start would rebuild the "
            "engine; pass engine_cache=DIR (Segmenter) or run 'edgeseg build-engine BUNDLE --cache DIR' "
            "once as a user who can write there"
        )

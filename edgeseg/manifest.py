"""The bundle manifest `edgeseg.json`: what an exported model is and how to feed it.

A bundle is a directory holding a target's files plus this manifest. The manifest is versioned
(`schema_version`): a reader refuses a newer schema instead of guessing, and ignores keys it does not
know within its own schema (a later edgeseg may add optional keys without bumping the version). It
records the sha256 of every file, checked when a bundle is read, so a modified or half-copied bundle
is refused with the file named. Reading needs only the standard library: no torch, no runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from edgeseg._io import write_json
from edgeseg._paths import folder_not_file
from edgeseg.errors import InputError

__all__ = [
    "INPUT_NAME",
    "MANIFEST_NAME",
    "METADATA_PREFIX",
    "OUTPUT_NAME",
    "SCHEMA_VERSION",
    "InputSpec",
    "Manifest",
    "OutputSpec",
    "manifest_from_onnx_metadata",
    "onnx_metadata",
    "read_manifest",
    "sha256_file",
    "write_manifest",
]

MANIFEST_NAME = "edgeseg.json"
# The tensor names of every graph edgeseg writes and of its torch backend (readers take the names a
# manifest records, so a foreign graph may use others).
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
SCHEMA_VERSION = 1
METADATA_PREFIX = "edgeseg."  # key prefix in an ONNX file's metadata_props


@dataclass(frozen=True)
class InputSpec:
    """The network input and the preprocessing that produces it from a frame.

    x = (pixel / 255 - mean) / std per channel, channels in `color_order` ("RGB", "BGR" or "GRAY"),
    the frame brought to `width` x `height` by `resize` ("stretch"). With dynamic H/W, any size whose
    sides divide by `size_multiple` works; `width` x `height` is the export size.

    `graph_steps` lists the preprocessing the graph itself does (empty for a plain graph): "resize"
    (any frame size to `width` x `height`, Pillow's antialiased bilinear) and "normalize" (uint8 to
    float, mean/std, the model's channel order, NHWC to NCHW). Such a graph takes uint8 NHWC frames
    (`layout`, `dtype`) whose channels are in `frame_order` ("BGR", "RGB" or "GRAY").
    """

    name: str
    channels: int
    height: int
    width: int
    color_order: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "stretch"
    layout: str = "NCHW"
    dtype: str = "float32"
    size_multiple: int = 1
    graph_steps: tuple[str, ...] = ()
    frame_order: str = ""  # with graph_steps: the channel order of the frames the graph takes


@dataclass(frozen=True)
class OutputSpec:
    """The network output: raw class scores (logits) of shape (N, classes, H, W); argmax is the mask.

    A graph whose `graph_steps` holds "argmax" also outputs the class ids, (N, H, W) uint8 (uint16
    beyond 256 classes), as the tensor named `mask`; the logits stay an output for probabilities.
    """

    name: str
    classes: int
    layout: str = "NCHW"
    dtype: str = "float32"
    graph_steps: tuple[str, ...] = ()
    mask: str = ""


@dataclass(frozen=True)
class Manifest:
    """Everything `edgeseg.json` holds. `files` maps each file's name (relative, '/'-separated) to
    its sha256; `dynamic_axes` maps a tensor name to {axis index: axis name}; `parity` is the export's
    parity report (`edgeseg.evaluation.parity.ParityReport.to_dict()`)."""

    target: str
    precision: str
    model_file: str
    class_names: tuple[str, ...]
    input: InputSpec
    output: OutputSpec
    source: dict[str, Any]  # {"checkpoint": path as given, "sha256": of the checkpoint file}
    model: dict[str, Any] = field(default_factory=dict)  # architecture (UNetConfig.to_dict())
    ignore_index: int | None = None
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None  # None for fp32
    tools: dict[str, str] = field(default_factory=dict)  # package -> version used to export/check
    parity: dict[str, Any] | None = None
    # A device-specific build (TensorRT): the engine-ready ONNX's sha256, the optimisation profile
    # and, once built, the TensorRT version, GPU, compute capability and CUDA version.
    engine: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    edgeseg_version: str = ""
    created_at: str = ""  # ISO 8601, UTC

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in reading order."""
        data = asdict(self)
        ordered = {k: data.pop(k) for k in ("schema_version", "edgeseg_version", "created_at")}
        ordered.update(data)
        ordered["dynamic_axes"] = {
            t: {str(a): n for a, n in ax.items()} for t, ax in self.dynamic_axes.items()
        }
        return ordered

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "manifest") -> Manifest:
        """Validate and build a Manifest; InputError naming `where` and the offending key."""
        r = _Reader(data, where)
        version = r.get("schema_version", int)
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{where} was written by a newer edgeseg (schema {version}); this edgeseg reads schema "
                f"{SCHEMA_VERSION} and older: upgrade edgeseg"
            )
        if version < 1:
            raise InputError(f"{where} has an invalid schema_version {version}")
        inp, out = r.sub("input"), r.sub("output")
        dynamic = r.get("dynamic_axes", dict, default={})
        try:
            axes = {str(t): {int(a): str(n) for a, n in ax.items()} for t, ax in dynamic.items()}
        except (AttributeError, TypeError, ValueError):
            raise InputError(
                f"{where} has a malformed 'dynamic_axes' (expected {{tensor: {{axis: name}}}})"
            ) from None
        files = r.get("files", dict, default={})
        for name in files:
            _check_relative(name, where)
        return cls(
            schema_version=version,
            edgeseg_version=r.get("edgeseg_version", str),
            created_at=r.get("created_at", str, default=""),
            target=r.get("target", str),
            precision=r.get("precision", str),
            model_file=_check_relative(r.get("model_file", str), where),
            class_names=tuple(str(c) for c in r.get("class_names", list)),
            ignore_index=r.get("ignore_index", int, default=None),
            model=r.get("model", dict, default={}),
            input=InputSpec(
                name=inp.get("name", str),
                channels=inp.get("channels", int),
                height=inp.get("height", int),
                width=inp.get("width", int),
                color_order=inp.get("color_order", str),
                mean=inp.floats("mean"),
                std=inp.floats("std"),
                resize=inp.get("resize", str, default="stretch"),
                layout=inp.get("layout", str, default="NCHW"),
                dtype=inp.get("dtype", str, default="float32"),
                size_multiple=inp.get("size_multiple", int, default=1),
                graph_steps=tuple(str(v) for v in inp.get("graph_steps", list, default=[])),
                frame_order=inp.get("frame_order", str, default=""),
            ),
            output=OutputSpec(
                name=out.get("name", str),
                classes=out.get("classes", int),
                layout=out.get("layout", str, default="NCHW"),
                dtype=out.get("dtype", str, default="float32"),
                graph_steps=tuple(str(v) for v in out.get("graph_steps", list, default=[])),
                mask=out.get("mask", str, default=""),
            ),
            dynamic_axes=axes,
            source=r.get("source", dict, default={}),
            quantization=r.get("quantization", dict, default=None),
            tools={str(k): str(v) for k, v in r.get("tools", dict, default={}).items()},
            parity=r.get("parity", dict, default=None),
            engine=r.get("engine", dict, default=None),
            files={str(k): str(v) for k, v in files.items()},
        )


class _Reader:
    """Typed access to a JSON object whose errors name the file and the full key."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        if not isinstance(data, Mapping):
            raise InputError(
                f"{where} is malformed: {prefix.rstrip('.') or 'the top level'} is not an object"
            )
        self.data, self.where, self.prefix = data, where, prefix

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.data or (self.data[key] is None and default is None):
            if default is ...:
                raise InputError(f"{self.where} lacks the key '{self.prefix}{key}'; re-export the model")
            return default
        value = self.data[key]
        # bool is an int in Python; a true/false where a number belongs is still a wrong type.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InputError(
                f"{self.where} has a wrong type for '{self.prefix}{key}': expected {kind.__name__}, "
                f"got {type(value).__name__}"
            )
        return value

    def floats(self, key: str) -> tuple[float, ...]:
        values = self.get(key, list)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise InputError(f"{self.where} has a wrong type for '{self.prefix}{key}': expected numbers")
        try:
            return tuple(float(v) for v in values)
        except OverflowError:  # JSON integers have no size limit; a float does
            raise InputError(f"{self.where} has an out-of-range number in '{self.prefix}{key}'") from None

    def sub(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), self.where, f"{self.prefix}{key}.")


def _check_relative(name: str, where: str) -> str:
    """Refuse file names that would point outside the bundle (absolute paths, '..')."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise InputError(f"{where} lists the file '{name}', which is not a plain name inside the bundle")
    return name


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _bundle_files(bundle: Path) -> list[str]:
    return sorted(
        p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST_NAME
    )


def write_manifest(bundle_dir: str | os.PathLike[str], manifest: Manifest) -> Manifest:
    """Hash every file in `bundle_dir` (except the manifest), then write `edgeseg.json` atomically.

    Returns the manifest as written (with `files` filled in).
    """
    bundle = Path(bundle_dir)
    files = {name: sha256_file(bundle / name) for name in _bundle_files(bundle)}
    if manifest.model_file not in files:
        raise InputError(f"bundle '{bundle}' has no model file '{manifest.model_file}'")
    written = replace(manifest, files=files)
    write_json(bundle / MANIFEST_NAME, written.to_dict())
    return written


def read_manifest(bundle_dir: str | os.PathLike[str], verify: bool = True) -> Manifest:
    """Read and validate a bundle's `edgeseg.json` (`bundle_dir` may also be the manifest's path).

    With `verify`, every listed file must exist and match its sha256. Raises InputError naming the
    bundle and the problem: missing manifest or key, newer schema, a file modified or corrupt.
    """
    path = Path(bundle_dir)
    if path.name == MANIFEST_NAME and path.is_file():
        path = path.parent
    where = f"bundle '{path}'"
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir():
        raise InputError(f"{where} does not exist or is not a directory")
    if not manifest_path.is_file():
        raise InputError(
            folder_not_file(path, "", f"an edgeseg bundle (it has no {MANIFEST_NAME}): export one")
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: cannot read {MANIFEST_NAME} ({exc})") from None
    manifest = Manifest.from_dict(data, f"{where} ({MANIFEST_NAME})")
    if manifest.model_file not in manifest.files:
        raise InputError(f"{where}: {MANIFEST_NAME} does not list its model file '{manifest.model_file}'")
    if verify:
        for name, expected in manifest.files.items():
            file = path / name
            if not file.is_file():
                raise InputError(f"{where} is incomplete: '{name}' is missing")
            if sha256_file(file) != expected:
                raise InputError(
                    f"{where}: '{name}' has been modified or is corrupt (sha256 mismatch); re-export or "
                    f"copy the bundle again"
                )
    return manifest


# Everything but the per-bundle bookkeeping: a bare .onnx carries what is needed to feed it.
_METADATA_SKIP = ("files", "model_file", "tools", "parity", "engine")


def onnx_metadata(manifest: Manifest) -> dict[str, str]:
    """The manifest's essentials as ONNX `metadata_props`: "edgeseg.<key>" -> JSON text."""
    return {
        f"{METADATA_PREFIX}{key}": json.dumps(value, separators=(",", ":"))
        for key, value in manifest.to_dict().items()
        if key not in _METADATA_SKIP
    }


def manifest_from_onnx_metadata(
    props: Mapping[str, str], *, model_file: str, where: str = "ONNX metadata"
) -> Manifest | None:
    """Rebuild a Manifest from metadata written by `onnx_metadata` (e.g. onnxruntime's
    `custom_metadata_map`); None when the file holds no edgeseg keys (a model from elsewhere).

    The result lists no files (there is nothing to verify) and has no parity report.
    """
    data: dict[str, Any] = {}
    for key, text in props.items():
        if key.startswith(METADATA_PREFIX):
            try:
                data[key[len(METADATA_PREFIX) :]] = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                raise InputError(f"{where}: the value of '{key}' is not valid JSON") from None
    if not data:
        return None
    data["model_file"] = model_file
    return Manifest.from_dict(data, where)

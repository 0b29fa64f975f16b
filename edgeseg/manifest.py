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
from edgeseg._records import Record, check_plain, parse_json, read_json
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
    "softmax" in `graph_steps`: the graph itself ends in a softmax over the classes (a source graph
    from elsewhere), so the output already holds class probabilities and none is applied again.
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
    # Precisions the target's runtime computes this (fp32) bundle at when asked, without another
    # export, with the backend options that ask: {"bf16": {"inference_precision": "bf16"}}.
    runtime_precisions: dict[str, dict[str, Any]] = field(default_factory=dict)
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
        """Validate and build a Manifest; InputError naming `where` and the offending key (types,
        ranges, finite numbers, known choices, the parity report's shape: edgeseg._records)."""
        check_plain(data, where, _ADVICE)
        r = Record(data, where, _ADVICE)
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
        for name, digest in files.items():
            _check_relative(name, where)
            if not isinstance(digest, str):
                r.fail(f"files.{name}", "a wrong type (expected a sha256 text)")
        channels = inp.integer("channels", minimum=1, maximum=_MAX_CHANNELS)
        classes = out.integer("classes", minimum=1, maximum=_MAX_CLASSES)
        names = r.texts("class_names")
        if len(names) != classes:
            r.fail("class_names", f"{len(names)} name(s) for {classes} classes in 'output.classes'")
        return cls(
            schema_version=version,
            edgeseg_version=r.text("edgeseg_version"),
            created_at=r.text("created_at", default=""),
            target=r.text("target"),
            precision=r.text("precision"),
            model_file=_check_relative(r.text("model_file"), where),
            class_names=tuple(names),
            ignore_index=r.integer("ignore_index", minimum=0, maximum=_MAX_CLASSES, default=None),
            model=r.plain("model", default={}),
            input=InputSpec(
                name=inp.text("name"),
                channels=channels,
                height=inp.integer("height", minimum=1, maximum=_MAX_SIDE),
                width=inp.integer("width", minimum=1, maximum=_MAX_SIDE),
                color_order=inp.text("color_order", choices=_COLOR_ORDERS),
                mean=tuple(inp.numbers("mean", length=channels)),
                std=tuple(inp.numbers("std", length=channels, minimum=_MIN_STD)),
                resize=inp.text("resize", choices=_RESIZES, default="stretch"),
                layout=inp.text("layout", choices=_LAYOUTS, default="NCHW"),
                dtype=inp.text("dtype", choices=_DTYPES, default="float32"),
                size_multiple=inp.integer("size_multiple", minimum=1, maximum=_MAX_SIDE, default=1),
                graph_steps=tuple(_steps(inp, _INPUT_STEPS)),
                frame_order=inp.text("frame_order", choices=("", *_COLOR_ORDERS), default=""),
            ),
            output=OutputSpec(
                name=out.text("name"),
                classes=classes,
                layout=out.text("layout", choices=_LAYOUTS, default="NCHW"),
                dtype=out.text("dtype", choices=_DTYPES, default="float32"),
                graph_steps=tuple(_steps(out, _OUTPUT_STEPS)),
                mask=out.text("mask", default=""),
            ),
            dynamic_axes=axes,
            source=r.plain("source", default={}),
            quantization=r.plain("quantization", default=None),
            tools=r.mapping("tools", _scalar_text, default={}),
            parity=parity_report(r.sub("parity")) if r.has("parity") else None,
            engine=r.plain("engine", default=None),
            runtime_precisions=r.mapping("runtime_precisions", _runtime_options, default={}),
            files={str(k): str(v) for k, v in files.items()},
        )


# What a manifest's values may be (edgeseg writes nothing else; a reader must not guess at the rest).
_ADVICE = "re-export the model or copy the bundle again"
_COLOR_ORDERS = ("RGB", "BGR", "GRAY")
_RESIZES = ("stretch", "letterbox")
_LAYOUTS = ("NCHW", "NHWC")
_DTYPES = ("float32", "float16", "uint8")
_INPUT_STEPS = ("resize", "normalize")
_OUTPUT_STEPS = ("argmax", "softmax")
_MAX_CHANNELS, _MAX_CLASSES, _MAX_SIDE = 64, 65536, 1 << 16
_MIN_STD = 1e-12  # std divides: zero or negative is no normalisation


def _steps(r: Record, known: tuple[str, ...]) -> list[str]:
    steps = r.texts("graph_steps", default=[])
    unknown = [s for s in steps if s not in known]
    if unknown:
        r.fail("graph_steps", f"an unknown step {unknown[0]!r} (expected some of {', '.join(known)})")
    return list(steps)


def _scalar_text(r: Record, key: str) -> str:
    """A text, number or null kept as text (tool versions)."""
    value = r.get(key, (str, int, float), default=None)
    return "" if value is None else str(value)


def _runtime_options(r: Record, key: str) -> dict[str, Any]:
    """The backend options of one run-time precision ({"inference_precision": "bf16"}): texts,
    numbers or true/false, shown by `edgeseg info`."""
    return r.mapping(key, lambda rec, option: rec.get(option, (str, int, float, bool)))


def _share(r: Record, key: str) -> Any:
    return r.number(key, minimum=0.0, maximum=1.0, default=None)


def parity_report(r: Record) -> dict[str, Any]:
    """Validate a parity report (`edgeseg.evaluation.parity.ParityReport.to_dict()`, in a manifest)
    and return it as plain JSON: every figure a reader shows is a finite number in its range (or
    null where the report allows), every name a text; keys this edgeseg does not know are kept."""
    for key in ("target", "precision", "runtime", "inputs"):
        r.text(key, default="")
    r.text("reference", default="PyTorch")
    for key in ("worst_class", "measured_on"):
        r.text(key, default=None)
    r.integer("images", minimum=0, default=None)
    r.numbers("img_size", minimum=1, length=2, default=None)
    r.text("output", choices=("logits", "probabilities"), default="logits")
    r.number("max_abs_logit_diff", minimum=0.0)
    r.number("mean_abs_logit_diff", minimum=0.0, default=None)
    r.number("pixel_agreement", minimum=0.0, maximum=1.0)
    r.number("miou_vs_pytorch", minimum=0.0, maximum=1.0)
    for key in ("miou_pytorch_vs_gt", "miou_artifact_vs_gt", "boundary_f_vs_pytorch"):
        _share(r, key)
    r.number("worst_class_drop_points", minimum=-100.0, maximum=100.0, default=None)
    r.number("seconds", minimum=0.0, default=None)
    c = r.sub("classes", default=None)
    if c is not None:
        _class_figures(c)
    return dict(r.data)


def _class_figures(c: Record) -> None:
    """The parity report's `classes` section (edgeseg.evaluation.classwise)."""
    for w in c.subs("worst", default=[]):
        w.text("class")
        w.number("drop_points", minimum=-100.0, maximum=100.0, default=None)
        for key in ("iou_pytorch", "iou_artifact", "iou_vs_pytorch"):
            _share(w, key)
    c.number("boundary_tolerance_px", minimum=0.0, default=None)
    _share(c, "boundary_f_vs_pytorch")
    gt = c.sub("boundary_f_vs_gt", default=None)
    if gt is not None:
        _share(gt, "artifact")
        _share(gt, "pytorch")
    for f in c.subs("flips", default=[]):
        f.text("pytorch")
        f.text("artifact")
        f.integer("pixels", minimum=0, default=None)
        f.number("share", minimum=0.0, maximum=1.0)
    c.mapping("unjudged", lambda u, k: u.text(k), default={})
    for key in ("iou_vs_pytorch", "iou_pytorch_vs_gt", "iou_artifact_vs_gt"):
        c.mapping(key, _share, default={})
    c.mapping("drop_points", lambda d, k: d.number(k, minimum=-100.0, maximum=100.0), default={})
    c.mapping("gt_pixels", lambda g, k: g.integer(k, minimum=0), default={})


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
    named = f"{where} ({MANIFEST_NAME})"
    manifest = Manifest.from_dict(read_json(manifest_path, named, _ADVICE), named)
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
            if not isinstance(text, str):
                raise InputError(f"{where}: the value of '{key}' is not valid JSON")
            data[key[len(METADATA_PREFIX) :]] = parse_json(text, f"{where}: the value of '{key}'")
    if not data:
        return None
    data["model_file"] = model_file
    return Manifest.from_dict(data, where)

"""Export a checkpoint to a deployment target as a self-describing bundle directory.

`export(checkpoint, ExportConfig(target=...))` is file in, bundle out. The steps every target shares
live here: validate the options against the format table, load the checkpoint, draft the manifest,
let the target's module write its files, measure parity against PyTorch, write `edgeseg.json`. Each
target's module (named by `Target.exporter` in edgeseg.formats) only writes its files:

    def export_artifact(job: ExportJob) -> Artifact

Everything is written into a temporary folder beside the destination and renamed into place at the
end, so a failed or interrupted export leaves no partial bundle. Heavy packages (torch, onnx,
openvino) are imported when an export runs, not when this package is imported.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.errors import InputError
from edgeseg.formats import Target, ensure_packages, module_version, validate_export_options
from edgeseg.manifest import (
    INPUT_NAME,
    MANIFEST_NAME,
    OUTPUT_NAME,
    Manifest,
    OutputSpec,
    sha256_file,
    write_manifest,
)

if TYPE_CHECKING:
    import torch

    from edgeseg.evaluation.parity import ParityReport
    from edgeseg.exporters.accuracy import DropMeter
    from edgeseg.models.checkpoint import Checkpoint

__all__ = [
    "INPUT_NAME",
    "MAX_OPSET",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "Artifact",
    "ExportConfig",
    "ExportJob",
    "ExportResult",
    "default_bundle_dir",
    "export",
]

# Tensor names of exported graphs; runtimes read them from the manifest, never from here.
# 18 is the oldest opset torch's dynamo exporter writes natively (older ones go through the ONNX
# version converter); 23 the newest torch 2.13 writes.
MIN_OPSET, MAX_OPSET = 18, 23
_AXES = {0: "batch", 2: "height", 3: "width"}


@dataclass(frozen=True)
class ExportConfig:
    """What to export and where.

    Attributes:
        target: "onnx" or "openvino" (see edgeseg.formats).
        precision: "fp32", "fp16" or "int8" (see edgeseg.formats for what each target offers).
        img_size: (width, height) of the exported input; default the checkpoint's training size.
        dynamic: make batch, height and width dynamic (sides must still divide by 2**depth).
        opset: ONNX opset of the exported graph (also the graph the OpenVINO IR is converted from).
        val_data: a labelled folder for the parity check; default synthetic images.
        out: the bundle folder; default next to the checkpoint, e.g. runs/x/unet-onnx-fp32.
        parity_images: synthetic images for the parity check when no val_data is given.
        overwrite: replace an existing bundle at `out`.
        calib: folder of calibration images for int8 (a dataset folder works); default synthetic.
        calib_method: int8 range estimation, "minmax", "entropy" or "percentile".
        max_drop: int8 only, with val_data: the most mIoU points the export may lose vs the FP32
            PyTorch model on val_data; remedies are tried when plain PTQ loses more, and the export
            fails (no bundle) when none meets it (see edgeseg.exporters.accuracy).
        batch: targets with a "batch" option (TensorRT), with `dynamic`: the largest batch the
            engine's optimisation profile accepts; None for the target's default.
    """

    target: str
    precision: str = "fp32"
    img_size: tuple[int, int] | None = None
    dynamic: bool = False
    opset: int = 18
    val_data: str | None = None
    out: str | None = None
    parity_images: int = 8
    overwrite: bool = False
    calib: str | None = None
    calib_method: str = "minmax"
    max_drop: float | None = None
    batch: int | None = None


@dataclass(frozen=True)
class ExportJob:
    """What a target's module gets: the model (eval, CPU), the manifest draft (no files, tools or
    parity yet), the config and the temporary bundle folder to write into; with `config.max_drop`,
    the meter that scores candidates on val_data, `log` for one-line progress reports, and `dest`,
    the folder the bundle will have once installed (for messages that name it)."""

    model: torch.nn.Module
    manifest: Manifest
    config: ExportConfig
    workdir: Path
    meter: DropMeter | None = None
    log: Callable[[str], None] = field(default=lambda _: None)
    dest: Path | None = None


@dataclass(frozen=True)
class Artifact:
    """What a target's module wrote: the model file's name inside the bundle, extra tools it used and,
    for fp16/int8, how it reduced the precision (the manifest's `quantization` field). Optional:
    `engine`, the manifest's record of a device-specific build (TensorRT); `notes`, lines the user
    should read after the export; `measured_on`, what parity's CPU run of the model file stands for."""

    model_file: str
    tools: dict[str, str] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    measured_on: str | None = None


@dataclass(frozen=True)
class ExportResult:
    """A finished export: the bundle folder, its manifest and the parity report."""

    bundle: Path
    manifest: Manifest
    parity: ParityReport
    seconds: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "bundle": str(self.bundle),
            "target": m.target,
            "precision": m.precision,
            "model_file": str(self.bundle / m.model_file),
            "seconds": round(self.seconds, 2),
            "parity": self.parity.to_dict(),
            "notes": list(self.notes),
        }


def default_bundle_dir(
    checkpoint: str | os.PathLike[str], target: str, precision: str, dynamic: bool
) -> Path:
    """runs/x/best.pt -> runs/x/unet-<target>-<precision>[-dynamic]."""
    suffix = "-dynamic" if dynamic else ""
    return Path(checkpoint).parent / f"unet-{target}-{precision}{suffix}"


def _check_config(config: ExportConfig) -> None:
    if not MIN_OPSET <= config.opset <= MAX_OPSET:
        raise InputError(f"--opset {config.opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET}")
    if config.batch is not None and config.batch < 1:
        raise InputError(f"--batch must be 1 or more; got {config.batch}")
    if config.parity_images < 1:
        raise InputError(f"parity needs at least 1 image; got parity_images={config.parity_images}")
    if config.val_data is not None and not Path(config.val_data).is_dir():
        raise InputError(f"--val-data folder '{config.val_data}' does not exist")
    from edgeseg.exporters.quantize import CALIB_METHODS

    if config.calib_method not in CALIB_METHODS:
        raise InputError(
            f"unknown --calib-method '{config.calib_method}'; choose from {', '.join(CALIB_METHODS)}"
        )
    if config.precision != "int8" and (config.calib is not None or config.calib_method != "minmax"):
        raise InputError("--calib and --calib-method apply to --precision int8 only")
    if config.calib is not None and not Path(config.calib).is_dir():
        raise InputError(f"--calib folder '{config.calib}' does not exist")
    if config.max_drop is not None:
        if not config.max_drop >= 0:  # also refuses NaN
            raise InputError(f"--max-drop must be 0 or more mIoU points; got {config.max_drop:g}")
        if config.precision != "int8":
            raise InputError("--max-drop applies to --precision int8 only")
        if config.val_data is None:
            raise InputError("--max-drop needs --val-data: the drop is measured on labelled images")


def _check_size(size: tuple[int, int], ckpt: Checkpoint, dynamic: bool) -> tuple[int, int]:
    """The export size, or InputError naming the nearest size the architecture accepts."""
    from edgeseg.models.registry import round_to_stride

    w, h = int(size[0]), int(size[1])
    spec = ckpt.model_config
    if spec.family == "imported":
        if (w, h) != tuple(ckpt.img_size) or dynamic:
            iw, ih = ckpt.img_size
            raise InputError(
                f"an imported model exports at the size it was imported at, {iw}x{ih}, with a fixed "
                f"input size (got --img-size {w}x{h}{', --dynamic' if dynamic else ''}); import it "
                "again with img_size=(W, H) for another size"
            )
        return w, h
    stride = spec.stride
    if w <= 0 or h <= 0 or w % stride or h % stride:
        raise InputError(
            f"--img-size {w}x{h} does not suit {spec.describe()}: width and height must divide by "
            f"{stride}; e.g. {round_to_stride(w, stride)}x{round_to_stride(h, stride)}"
        )
    return w, h


def _check_destination(dest: Path, overwrite: bool) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise InputError(f"--out '{dest}' exists and is not a folder")
    if not overwrite:
        raise InputError(f"bundle '{dest}' already exists; pass --overwrite to replace it or choose --out")
    # Never delete a folder that is not a bundle (e.g. --out . by mistake).
    if any(dest.iterdir()) and not (dest / MANIFEST_NAME).is_file():
        raise InputError(f"refusing to replace '{dest}': it is not an edgeseg bundle (no {MANIFEST_NAME})")


def _draft_manifest(
    ckpt: Checkpoint, checkpoint: Path, target: Target, config: ExportConfig, size: tuple[int, int]
) -> Manifest:
    from edgeseg._version import __version__

    cfg = ckpt.model_config
    axes = {INPUT_NAME: dict(_AXES), OUTPUT_NAME: dict(_AXES)} if config.dynamic else {}
    return Manifest(
        target=target.name,
        precision=config.precision,
        model_file="",
        class_names=tuple(ckpt.class_names),
        input=ckpt.input_spec(INPUT_NAME, size),
        output=OutputSpec(name=OUTPUT_NAME, classes=cfg.classes),
        source={"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint)},
        model={"name": cfg.arch, **cfg.kwargs, **cfg.to_dict()},  # kwargs flat too: schema-1 readers
        ignore_index=ckpt.ignore_index,
        dynamic_axes=axes,
        edgeseg_version=__version__,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _tools(target: Target, artifact: Artifact) -> dict[str, str]:
    import numpy
    import torch

    from edgeseg._version import __version__

    tools = {"edgeseg": __version__, "python": platform.python_version(), "torch": torch.__version__}
    tools["numpy"] = numpy.__version__
    tools.update({req.module: module_version(req.module) for req in target.requires})
    tools.update(artifact.tools)
    return tools


def _with_drop(quantization: dict[str, Any] | None, report: ParityReport) -> dict[str, Any] | None:
    """The artifact's quantization entry plus, with labelled data, the mIoU drop vs the FP32 model in
    points (PyTorch's mIoU vs truth minus the artifact's, times 100; positive = lost accuracy)."""
    if quantization is None:
        return None
    entry = dict(quantization)
    fp32, quant = report.miou_pytorch_vs_gt, report.miou_artifact_vs_gt
    if fp32 is not None and quant is not None and fp32 == fp32 and quant == quant:  # not NaN
        entry["miou_drop_points"] = round((fp32 - quant) * 100, 4)
    return entry


def _install(tmp: Path, dest: Path) -> None:
    """Rename the finished folder onto `dest`; an old bundle there is removed only once the new one is in."""
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export(
    checkpoint: str | os.PathLike[str],
    config: ExportConfig,
    *,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export `checkpoint` as a bundle for `config.target` and check its parity with PyTorch.

    `log` receives one line per accuracy-aware INT8 attempt (with `config.max_drop`).

    Raises InputError for bad options, a bad checkpoint or an existing destination (before any work),
    MissingDependencyError naming the pip extra when a package is missing, EdgesegRuntimeError when
    the conversion fails. On any failure nothing is left at the destination.
    """
    start = time.perf_counter()
    target = validate_export_options(
        config.target, config.precision, dynamic=config.dynamic, batch=config.batch is not None
    )
    config = replace(config, target=target.name, precision=config.precision.strip().lower())
    _check_config(config)
    ensure_packages(target)

    from edgeseg.evaluation.parity import measure_parity
    from edgeseg.models.checkpoint import load_checkpoint

    ckpt_path = Path(checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    size = _check_size(config.img_size or ckpt.img_size, ckpt, config.dynamic)
    dest = (
        Path(config.out)
        if config.out
        else default_bundle_dir(ckpt_path, target.name, config.precision, config.dynamic)
    )
    _check_destination(dest, config.overwrite)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()  # beside the destination: same filesystem, so the final rename is atomic
    try:
        import torch

        # Checkpoints build channels_last models (faster on CPU); torch.export of one with dynamic
        # shapes fails its shape constraints, and the exported graph is plain NCHW either way.
        model = ckpt.build_model("cpu").to(memory_format=torch.contiguous_format)
        draft = _draft_manifest(ckpt, ckpt_path, target, config, size)
        writer = importlib.import_module(str(target.exporter))  # set: validate_export_options checked
        meter = None
        if config.max_drop is not None and config.val_data is not None:
            from edgeseg.exporters.accuracy import DropMeter

            meter = DropMeter.build(ckpt, model, target.name, size, config.val_data)
        job = ExportJob(model, draft, config, tmp, meter, log or (lambda _: None), dest)
        artifact: Artifact = writer.export_artifact(job)
        report = measure_parity(
            ckpt,
            tmp / artifact.model_file,
            target=target.name,
            precision=config.precision,
            img_size=size,
            val_data=config.val_data,
            images=config.parity_images,
            model=model,
        )
        if artifact.measured_on:
            report = replace(report, measured_on=artifact.measured_on)
        manifest = replace(
            draft,
            model_file=artifact.model_file,
            tools=_tools(target, artifact),
            parity=report.to_dict(),
            quantization=_with_drop(artifact.quantization, report),
            engine=artifact.engine,
        )
        manifest = write_manifest(tmp, manifest)
        _install(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(dest, manifest, report, time.perf_counter() - start, artifact.notes)

"""Export a checkpoint or an ONNX file to a deployment target as a self-describing bundle directory.

`export(source, ExportConfig(target=...))` is file in, bundle out. The steps every target shares
live here: validate the options against the format table, open the source (edgeseg.exporters.source:
a checkpoint, or an ONNX file from elsewhere), draft the manifest, let the target's module write its
files from the source's FP32 ONNX graph, measure parity against the source's FP32 reference (PyTorch,
or the source ONNX on ONNX Runtime), write `edgeseg.json`. Each
target's module (named by `Target.exporter` in edgeseg.formats) only writes its files:

    def export_artifact(job: ExportJob) -> Artifact

Everything is written into a temporary folder beside the destination and renamed into place at the
end, so a failed or interrupted export leaves no partial bundle. Heavy packages (torch, onnx,
openvino) are imported when an export runs, not when this package is imported.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg._claims import Claim, claim
from edgeseg._evidence import Evidence, labelled_hint
from edgeseg._guards import size_arg
from edgeseg._io import replace_folder
from edgeseg._paths import Output, check_outputs
from edgeseg._progress import track
from edgeseg._reuse import CONTENT, NOT_SHAPING, content_digest, reuse_key, settings_of
from edgeseg._version import __version__
from edgeseg.data import FolderDataset, check_declared_classes
from edgeseg.errors import InputError
from edgeseg.evaluation.parity import measure_parity
from edgeseg.exporters.accuracy import Bound, DropMeter
from edgeseg.formats import Target, ensure_packages, module_version, validate_export_options
from edgeseg.manifest import INPUT_NAME, MANIFEST_NAME, OUTPUT_NAME, Manifest, write_manifest

if TYPE_CHECKING:
    from edgeseg.evaluation.parity import ParityReport, Reference
    from edgeseg.exporters.calibset import CalibrationSet
    from edgeseg.exporters.source import ExportSource, SourceFacts

__all__ = [
    "INPUT_NAME",
    "MAX_OPSET",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "Artifact",
    "ExportConfig",
    "ExportJob",
    "ExportResult",
    "check_data",
    "export",
    "export_settings",
]

# Tensor names of exported graphs; runtimes read them from the manifest, never from here.
# 18 is the oldest opset torch's dynamo exporter writes natively (older ones go through the ONNX
# version converter); 23 the newest torch 2.13 writes.
MIN_OPSET, MAX_OPSET = 18, 23


@dataclass(frozen=True)
class ExportConfig:
    """What to export and where.

    Attributes:
        target: "onnx", "openvino" or "tensorrt" (the names of edgeseg.formats.TARGETS).
        precision: "fp32", "fp16" or "int8" (see edgeseg.formats for what each target offers).
        img_size: (width, height) of the exported input; default the checkpoint's training size, or
            an ONNX source's fixed input size (a dynamic one needs it).
        dynamic: make batch, height and width dynamic (sides must still divide by 2**depth).
        opset: ONNX opset of the exported graph (also the graph the OpenVINO IR is converted from);
            checkpoints only: an ONNX source keeps its own (see edgeseg.exporters.onnx_source).
        val_data: a labelled folder for the parity check; default synthetic images.
        out: the bundle folder; default next to the source, e.g. runs/x/unet-onnx-fp32 for
            runs/x/best.pt, runs/x/model-onnx-fp32 for runs/x/model.onnx.
        parity_images: synthetic images for the parity check when no val_data is given.
        overwrite: replace an existing bundle at `out`.
        calib: folder of calibration images for int8 (a dataset folder works); default the
            checkpoint's recorded training folder while it exists, else synthetic scenes (see
            edgeseg.exporters.calibration, which also measures the set's coverage).
        calib_method: int8 range estimation, "minmax", "entropy" or "percentile".
        max_drop: int8 only, with val_data: the most mIoU points the export may lose vs the FP32
            PyTorch model on val_data; remedies are tried when plain PTQ loses more, and the export
            fails (no bundle) when none meets it (see edgeseg.exporters.accuracy).
        max_class_drop: int8 only, with val_data: the most IoU points any judged class may lose vs
            the FP32 model on val_data (judged: at least 0.1% of the labelled pixels; absent and
            tiny classes cannot fail the export); alone or with max_drop, same remedies.
        batch: targets with a "batch" option (TensorRT), with `dynamic`: the largest batch the
            engine's optimisation profile accepts; None for the target's default.
        fuse_prepost: put the preprocessing (resize, normalisation, layout) and the argmax into the
            graph (see edgeseg.exporters.prepost), for targets with the "prepost" option; the
            graph then takes uint8 frames of any size and returns class ids (and the logits).

    Every field is a setting that shapes the bundle, and so part of its reuse key
    (`export_settings`), unless its metadata says otherwise: `NOT_SHAPING` for where and whether to
    write, `CONTENT` for a folder whose content (not its name) shapes the bundle. A new field
    needs nothing more to be part of the key.
    """

    target: str
    precision: str = "fp32"
    img_size: tuple[int, int] | None = None
    dynamic: bool = False
    opset: int = 18
    val_data: str | None = field(default=None, metadata=CONTENT)
    out: str | None = field(default=None, metadata=NOT_SHAPING)
    parity_images: int = field(default=8, metadata=NOT_SHAPING)  # the report's, not the artifact's
    overwrite: bool = field(default=False, metadata=NOT_SHAPING)
    calib: str | None = field(default=None, metadata=CONTENT)
    calib_method: str = "minmax"
    max_drop: float | None = None
    batch: int | None = None
    max_class_drop: float | None = None
    fuse_prepost: bool = False


@dataclass(frozen=True)
class ExportJob:
    """What a target's module gets: the source (its FP32 ONNX graph: `write_fp32_onnx`), the manifest
    draft (no files, tools or parity yet), the config and the temporary bundle folder to write into;
    with `config.max_drop` or `config.max_class_drop`, the meter that scores candidates on val_data
    against the source's FP32 reference, `log` for one-line progress reports, `dest`, the folder the
    bundle will have once installed (for messages that name it), and the source's FP32 `reference`
    (what `calibration_set()` measures the calibration coverage with)."""

    source: ExportSource
    manifest: Manifest
    config: ExportConfig
    workdir: Path
    meter: DropMeter | None = None
    log: Callable[[str], None] = field(default=lambda _: None)
    dest: Path | None = None
    fp32_onnx: Path | None = None  # the graph already written for the doctor, copied, not re-exported
    reference: Reference | None = None

    def calibration_set(self) -> CalibrationSet:
        """The int8 calibration set, read when the target's module needs it: with the job's FP32
        `reference`, its source chosen and its coverage measured and reported
        (edgeseg.exporters.calibration); without, read from `config.calib` as given."""
        from edgeseg.exporters.calibset import load_calibration

        if self.reference is None:
            return load_calibration(self.config.calib, self.manifest)
        from edgeseg.exporters.calibration import prepare_calibration

        return prepare_calibration(
            self.source, self.config.calib, self.config.val_data, self.manifest, self.reference, self.log
        )

    def write_fp32_onnx(self, path: Path) -> None:
        """Write the source's FP32 ONNX graph for this job's input and metadata to `path`."""
        if self.fp32_onnx is not None and self.fp32_onnx.is_file():
            shutil.copyfile(self.fp32_onnx, path)
            return
        self.source.write_onnx(path, self.manifest, opset=self.config.opset)


@dataclass(frozen=True)
class Artifact:
    """What a target's module wrote: the model file's name inside the bundle, extra tools it used and,
    for fp16/int8, how it reduced the precision (the manifest's `quantization` field). Optional:
    `engine`, the manifest's record of a device-specific build (TensorRT); `notes`, lines the user
    should read after the export; `measured_on`, what parity's CPU run of the model file stands for;
    `manifest`, the draft as the model file needs it when the target changed the graph's input and
    outputs (pre/post in the graph: edgeseg.exporters.prepost.fused_manifest)."""

    model_file: str
    tools: dict[str, str] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    measured_on: str | None = None
    manifest: Manifest | None = None


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


def _check_config(config: ExportConfig) -> None:
    if config.img_size is not None:
        size_arg(config.img_size)  # a str would be read character by character
    if not MIN_OPSET <= config.opset <= MAX_OPSET:
        raise InputError(f"--opset {config.opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET}")
    if config.batch is not None and config.batch < 1:
        raise InputError(f"--batch must be 1 or more; got {config.batch}")
    if config.parity_images < 1:
        raise InputError(f"parity needs at least 1 image; got parity_images={config.parity_images}")
    if config.val_data is not None and not Path(config.val_data).is_dir():
        raise InputError(f"--val-data folder '{config.val_data}' does not exist")
    from edgeseg.exporters.calibset import CALIB_METHODS

    if config.calib_method not in CALIB_METHODS:
        raise InputError(
            f"unknown --calib-method '{config.calib_method}'; choose from {', '.join(CALIB_METHODS)}"
        )
    if config.precision != "int8" and (config.calib is not None or config.calib_method != "minmax"):
        raise InputError("--calib and --calib-method apply to --precision int8 only")
    if config.calib is not None and not Path(config.calib).is_dir():
        raise InputError(f"--calib folder '{config.calib}' does not exist")
    for option, value, unit in (
        ("--max-drop", config.max_drop, "mIoU"),
        ("--max-class-drop", config.max_class_drop, "IoU"),
    ):
        if value is None:
            continue
        if not 0 <= value < float("inf"):  # also refuses NaN and Inf
            raise InputError(f"{option} must be 0 or more {unit} points (a finite number); got {value:g}")
        if config.precision != "int8":
            raise InputError(f"{option} applies to --precision int8 only")
        if config.val_data is None:
            raise InputError(f"{option} needs --val-data: the drop is measured on labelled images")


def check_data(
    src: ExportSource,
    size: tuple[int, int],
    *,
    val_data: str | None,
    calib: str | None,
    data_flag: str = "--val-data",
) -> None:
    """Before any work: labelled `val_data` (given as `data_flag`) must have the model's classes and
    the minimum of labelled pixels in its own files (edgeseg._evidence; the figures measured on it
    are checked again as they are computed), and a `calib` dataset folder's classes.txt must list
    the model's classes. InputError naming what is wrong."""

    model = src.model_classes()
    if calib is not None:
        fix = "calibrate on images of this model's task (--calib)"
        check_declared_classes(calib, model, fix, src.ignore_index)
    if val_data is not None:
        ds = FolderDataset(
            val_data,
            img_size=size,
            num_classes=model,
            ignore_index=src.ignore_index,
            channels=src.channels,
            cache=False,
        )
        evidence = Evidence(
            "labelled pixels", ds.labelled_pixels, ds.labelled_images, hint=labelled_hint(src.ignore_index)
        )
        evidence.require(f"the figures on {data_flag} '{val_data}'")


def _normalized(config: ExportConfig) -> tuple[Target, ExportConfig]:
    """The config's target from the format table and its names in canonical form, options checked."""
    target = validate_export_options(
        config.target,
        config.precision,
        dynamic=config.dynamic,
        batch=config.batch is not None,
        prepost=config.fuse_prepost,
    )
    return target, replace(config, target=target.name, precision=config.precision.strip().lower())


def export_settings(src: ExportSource, config: ExportConfig) -> dict[str, Any]:
    """Everything that shapes the bundle `export(src.path, config)` writes, JSON-ready: the config's
    fields (`settings_of`: every field but where/whether to write, data folders by their content),
    the export size it resolves to, the source's content (sha256) and facts, for int8 without
    --calib the content of the default calibration folder, and the versions of the tools that
    write the files. Its `reuse_key` is recorded in the manifest (`source.reuse_key`), and a bundle
    is reused (by `benchmark`) only when the key of the settings asked for now is the same."""

    target, config = _normalized(config)
    settings = settings_of(config)
    if Bound.of(config) is None:
        settings.pop("val_data", None)  # without a bound it feeds only the parity report
    settings["img_size"] = list(src.export_size(config.img_size, config.dynamic))
    settings["source"] = {k: v for k, v in src.source_record().items() if k not in ("checkpoint", "onnx")}
    settings["model"] = {
        "classes": list(src.class_names),
        "channels": src.channels,
        "mean": list(src.mean),
        "std": list(src.std),
        "color_order": src.color_order,
        "resize": src.resize,
        "ignore_index": src.ignore_index,
    }
    if config.precision == "int8" and config.calib is None:
        from edgeseg.exporters.calibration import calibration_source

        folder = calibration_source(src, None)[0]
        settings["calibration"] = content_digest(folder) if folder is not None else "synthetic"
    modules = ["torch", *(req.module for req in target.requires)]
    settings["tools"] = {"edgeseg": __version__, **{m: module_version(m) for m in dict.fromkeys(modules)}}
    return settings


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


def _tools(target: Target, artifact: Artifact) -> dict[str, str]:
    import numpy
    import torch

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


_DOCTOR_GRAPH = ".doctor-fp32.onnx"


def _doctor(
    src: ExportSource, draft: Manifest, config: ExportConfig, path: Path, log: Callable[[str], None]
) -> Path:
    """Write the FP32 graph to `path`, run the doctor on it and log its findings, one line each;
    InputError when one would make the artifact wrong (see edgeseg.exporters.doctor)."""
    from edgeseg.exporters.doctor_run import graph_findings

    src.write_onnx(path, draft, opset=config.opset)
    calib = config.calib or config.val_data
    found = graph_findings(
        path,
        draft,
        [config.target],
        [config.precision],
        size=(draft.input.width, draft.input.height),
        calib=calib,
        advice=lambda s: src.size_advice(s, config.dynamic),
    )
    for finding in found:
        log(f"doctor: {finding.line()}")
    errors = [f for f in found if f.severity == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(
            f"refusing to export: {errors[0].line()}{more}; 'edgeseg doctor' lists every finding"
        )
    return path


def export(
    source: str | os.PathLike[str],
    config: ExportConfig,
    *,
    facts: SourceFacts | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> ExportResult:
    """Export `source` as a bundle for `config.target` and check its parity with its FP32 reference.

    `source` is an edgeseg checkpoint (the reference: its PyTorch model) or a `.onnx` file (the
    reference: that file on ONNX Runtime); `facts` gives what an ONNX file from elsewhere does not
    hold itself (classes, mean/std, colour order; see edgeseg.exporters.source.SourceFacts).
    `log` receives one line per finding of the export doctor on the FP32 graph (before anything is
    built; edgeseg.exporters.doctor) and per accuracy-aware INT8 attempt (with `config.max_drop`).
    `progress` shows each stage (doctor, the target's build, parity) on stderr while it runs
    (edgeseg._progress).

    Raises InputError for bad options, a bad source, an existing destination (before any work) or a
    doctor finding that would make the artifact wrong (an op the target does not run, FP16 overflow),
    MissingDependencyError naming the pip extra when a package is missing, EdgesegRuntimeError when
    the conversion fails. On any failure nothing is left at the destination.
    """
    start = time.perf_counter()
    target, config = _normalized(config)
    _check_config(config)
    ensure_packages(target)

    from edgeseg.exporters.source_open import open_export_source

    src = open_export_source(source, facts)
    size = src.export_size(config.img_size, config.dynamic)
    check_data(src, size, val_data=config.val_data, calib=config.calib)
    dest = (
        Path(config.out)
        if config.out
        else src.default_bundle_dir(target.name, config.precision, config.dynamic)
    )
    check_outputs(
        [("CHECKPOINT", source), ("--val-data", config.val_data), ("--calib", config.calib)],
        [Output("--out", dest, "bundle")],
    )
    settings = export_settings(src, config)
    # Held from before the existence check to after the rename: a second export to the same place
    # is refused at once instead of both succeeding and one bundle silently replacing the other.
    with claim(dest) as held:
        _check_destination(dest, config.overwrite)
        return _export_into(dest, held, src, target, size, config, log, start, settings, progress)


def _export_into(
    dest: Path,
    held: Claim,
    src: ExportSource,
    target: Target,
    size: tuple[int, int],
    config: ExportConfig,
    log: Callable[[str], None] | None,
    start: float,
    settings: dict[str, Any],
    progress: bool = False,
) -> ExportResult:

    def stage(what: str) -> contextlib.AbstractContextManager[Any]:
        return track(what, quiet=not progress, say_done=True)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = held.temporary()  # a run killed from here on leaves tmp; the next export to dest removes it
    tmp.mkdir()  # beside the destination: same filesystem, so the final rename is atomic
    try:
        draft = src.draft(target.name, config.precision, size, config.dynamic)
        # What made the bundle, and its key: a later run reuses the bundle only for the same key.
        record = {**draft.source, "settings": settings, "reuse_key": reuse_key(settings)}
        draft = replace(draft, source=record)
        writer = importlib.import_module(str(target.exporter))  # set: validate_export_options checked
        say = log or (lambda _: None)
        with stage("export: the FP32 graph and its doctor check"):
            fp32 = _doctor(src, draft, config, tmp / _DOCTOR_GRAPH, say)  # before anything is built
        with src.reference() as reference:
            meter = None
            if Bound.of(config) is not None and config.val_data is not None:
                names = draft.class_names
                bound = Bound.of(config)
                meter = DropMeter.build(reference, target.name, size, config.val_data, names, bound)
            job = ExportJob(src, draft, config, tmp, meter, say, dest, fp32, reference)
            what = f"export: the {target.name} {config.precision} artifact"
            with stage(what + (" (calibration, quantization)" if config.precision == "int8" else "")):
                artifact: Artifact = writer.export_artifact(job)
            fp32.unlink(missing_ok=True)  # not part of the bundle
            with stage("export: parity with the FP32 reference"):
                report = measure_parity(
                    reference,
                    tmp / artifact.model_file,
                    target=target.name,
                    precision=config.precision,
                    img_size=size,
                    val_data=config.val_data,
                    images=config.parity_images,
                    class_names=draft.class_names,
                )
        if artifact.measured_on:
            report = replace(report, measured_on=artifact.measured_on)
        manifest = replace(
            artifact.manifest or draft,
            model_file=artifact.model_file,
            tools=_tools(target, artifact),
            parity=report.to_dict(),
            quantization=_with_drop(artifact.quantization, report),
            engine=artifact.engine,
        )
        manifest = write_manifest(tmp, manifest)
        replace_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(dest, manifest, report, time.perf_counter() - start, artifact.notes)

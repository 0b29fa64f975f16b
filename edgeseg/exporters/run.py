"""The export every target shares: check the options and the data, open the source, run the doctor
on its FP32 graph, let the target's module write its files into a temporary folder, measure parity,
write the manifest and rename the folder into place (see edgeseg.exporters)."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg._claims import Claim, claim
from edgeseg._evidence import Evidence, labelled_hint
from edgeseg._guards import size_arg
from edgeseg._io import replace_folder
from edgeseg._paths import Output, check_outputs
from edgeseg._progress import track
from edgeseg._reuse import content_digest, reuse_key, settings_of
from edgeseg._version import __version__
from edgeseg.data import FolderDataset, check_declared_classes
from edgeseg.errors import InputError
from edgeseg.evaluation.parity import measure_parity
from edgeseg.exporters.accuracy import Bound, DropMeter
from edgeseg.formats import Target, ensure_packages, module_version, validate_export_options
from edgeseg.manifest import MANIFEST_NAME, Manifest, write_manifest

if TYPE_CHECKING:
    from edgeseg.evaluation.parity import ParityReport
    from edgeseg.exporters.source import ExportSource, SourceFacts

from edgeseg.exporters.contract import MAX_OPSET, MIN_OPSET, Artifact, ExportConfig, ExportJob, ExportResult

__all__ = ["check_data", "export", "export_settings"]


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

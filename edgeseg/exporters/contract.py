"""What a target's module gets and returns: the export's typed config (`ExportConfig`), the job
(`ExportJob`: the source, the manifest draft, the temporary bundle folder), what it wrote
(`Artifact`), and the finished export (`ExportResult`). edgeseg.exporters.run does the work."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg._reuse import CONTENT, NOT_SHAPING
from edgeseg.exporters.accuracy import DropMeter
from edgeseg.manifest import INPUT_NAME, OUTPUT_NAME, Manifest

if TYPE_CHECKING:
    from edgeseg.evaluation.parity import ParityReport, Reference
    from edgeseg.exporters.calibset import CalibrationSet
    from edgeseg.exporters.source import ExportSource

__all__ = [
    "INPUT_NAME",
    "MAX_OPSET",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "Artifact",
    "ExportConfig",
    "ExportJob",
    "ExportResult",
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

"""The export doctor, run: open a checkpoint, an ONNX file or a bundle, check its FP32 graph.

`diagnose(model)` is `edgeseg doctor`: a checkpoint is exported to ONNX in a temporary folder (the
same code `export` uses), an ONNX file is read as it is, and a bundle is checked through its source
when a file with the sha256 its manifest records is found (edgeseg._reuse.find_source, as `demo`
finds its baseline), else through its own FP32 ONNX file (verified against its manifest), and the
report says which and why; a bundle with neither is refused. `graph_findings` is what
`export` runs on the graph it is about to convert: the shape checks (edgeseg.exporters.doctor), the
op checks (doctor_ops) and, for fp16, the activation ranges on a few calibration images (doctor_fp16).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._paths import CHECKPOINT_FILES, folder_not_file
from edgeseg._reuse import find_source
from edgeseg.errors import InputError
from edgeseg.exporters.calibset import load_calibration
from edgeseg.exporters.doctor import Finding, SizeAdvice, check_resize, check_stride
from edgeseg.exporters.doctor_fp16 import check_fp16
from edgeseg.exporters.doctor_ops import check_int8, check_ops
from edgeseg.exporters.source import SourceFacts
from edgeseg.exporters.source_open import open_export_source
from edgeseg.formats import PRECISIONS, TARGETS, exportable_targets, get_target, parse_precision
from edgeseg.manifest import MANIFEST_NAME, Manifest, read_manifest

if TYPE_CHECKING:
    import onnx

    from edgeseg.exporters.source import SourceFacts

__all__ = ["DoctorReport", "check_graph", "diagnose", "graph_findings"]


@dataclass(frozen=True)
class DoctorReport:
    """What `diagnose` checked and found.

    Attributes:
        model: the path given. checked: which graph was checked, in words.
        targets, precisions: what it was checked for. findings: errors first.
    """

    model: str
    checked: str
    targets: tuple[str, ...]
    precisions: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(f.severity == s for f in self.findings) for s in ("error", "warning", "info")}
        return {
            "model": self.model,
            "checked": self.checked,
            "targets": list(self.targets),
            "precisions": list(self.precisions),
            "counts": counts,
            "findings": [f.to_dict() for f in self.findings],
        }


def check_graph(
    model: onnx.ModelProto,
    targets: Sequence[str],
    precisions: Sequence[str],
    size: tuple[int, int] | None,
    advice: SizeAdvice | None = None,
) -> list[Finding]:
    """Every graph-only check for `targets` x `precisions`; the stride check once for all targets,
    its sizes phrased by `advice` (`ExportSource.size_advice`: what the source's export accepts)."""
    found = check_stride(model, size, advice)
    for target in targets:
        found += check_ops(model, target) + check_resize(model, target)
        if "int8" in precisions:
            found += check_int8(model, target)
    return found


def _calibration_inputs(
    manifest: Manifest, calib: str | os.PathLike[str] | None, images: int
) -> list[np.ndarray]:

    with warnings.catch_warnings():  # "calibrating on N images": a few are what this check wants
        warnings.simplefilter("ignore", UserWarning)
        return list(load_calibration(calib, manifest, max_images=images, synthetic_images=images))


def graph_findings(
    onnx_path: Path,
    manifest: Manifest | None,
    targets: Sequence[str],
    precisions: Sequence[str],
    *,
    size: tuple[int, int] | None = None,
    calib: str | os.PathLike[str] | None = None,
    images: int = 4,
    advice: SizeAdvice | None = None,
) -> list[Finding]:
    """Every check on the FP32 graph at `onnx_path`, errors first. The FP16 ranges are measured
    (with "fp16" in `precisions`) on `images` images of `calib` (synthetic scenes without one),
    preprocessed as `manifest` says; without a manifest they are not measured (an info says so).
    `advice` phrases a size the stride check proposes (see `check_graph`)."""
    import onnx

    model = onnx.load(str(onnx_path))
    found = check_graph(model, targets, precisions, size, advice)
    if "fp16" in precisions:
        if manifest is None:
            found.append(
                Finding(
                    "info",
                    "fp16",
                    "activation ranges not measured: the graph does not say how its input is normalised",
                    "",
                    "pass --classes, --mean, --std and --color-order",
                    "",
                )
            )
        else:
            found += check_fp16(model, _calibration_inputs(manifest, calib, images))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: order.get(f.severity, 3))


def _bundle_source(bundle: Path) -> tuple[Path | None, str, Manifest]:
    """(the bundle's source file when its content is what was exported, or None; why; the manifest,
    read with every file verified: the bundle's own files may be what is checked)."""
    manifest = read_manifest(bundle)
    found, why = find_source(manifest.source, bundle)
    return found, why, manifest


def diagnose(
    model: str | os.PathLike[str],
    *,
    target: str | None = None,
    precision: str | None = None,
    img_size: tuple[int, int] | None = None,
    calib: str | os.PathLike[str] | None = None,
    images: int = 4,
    facts: SourceFacts | None = None,
    dynamic: bool | None = None,
) -> DoctorReport:
    """Check `model` (checkpoint, .onnx or bundle folder) for `target` at `precision`; each left out
    means every exportable target / precision (a bundle's own by default). `dynamic` checks the
    graph `export --dynamic` would convert (default: fixed size; a bundle: as it was exported).
    Raises InputError for a missing or unreadable model, or an unknown target or precision."""

    path = Path(model)
    if not path.exists():
        raise InputError(
            f"model '{path}' does not exist (give a checkpoint, an .onnx file or a bundle folder)"
        )
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise InputError(
                folder_not_file(
                    path,
                    "model",
                    f"an edgeseg bundle (it has no {MANIFEST_NAME}); give a bundle folder, a checkpoint "
                    "(.pt) or an .onnx file",
                    (*CHECKPOINT_FILES, ".onnx"),
                )
            )
        source, why, manifest = _bundle_source(path)
        size = img_size or (manifest.input.width, manifest.input.height)
        tgt = target if target is not None else manifest.target
        prec = precision if precision is not None else manifest.precision
        if source is not None:
            if source.suffix.lower() == ".onnx" and facts is None:
                inp = manifest.input
                facts = SourceFacts(
                    classes=tuple(manifest.class_names),
                    mean=tuple(inp.mean),
                    std=tuple(inp.std),
                    color_order=inp.color_order,
                )
            report = diagnose(
                source,
                target=tgt,
                precision=prec,
                img_size=size,
                calib=calib,
                images=images,
                facts=facts,
                dynamic=bool(manifest.dynamic_axes) if dynamic is None else dynamic,
            )
            return DoctorReport(
                str(path),
                f"{report.checked} (the bundle's source, {why})",
                report.targets,
                report.precisions,
                report.findings,
            )
        model_file = path / manifest.model_file
        if model_file.suffix.lower() != ".onnx" or manifest.precision != "fp32":
            raise InputError(
                f"bundle '{path}': its source cannot be used ({why}) and the bundle holds no FP32 ONNX "
                "graph to check instead; run the doctor on the checkpoint or ONNX file it was exported from"
            )
        targets, precisions = _choices(tgt, prec)
        found = graph_findings(
            model_file, manifest, targets, precisions, size=size, calib=calib, images=images
        )
        checked = f"the bundle's own {manifest.model_file}, not its source: {why}"
        return DoctorReport(str(path), checked, targets, precisions, tuple(found))
    targets, precisions = _choices(target, precision)
    with tempfile.TemporaryDirectory(prefix="edgeseg-doctor-") as tmp:
        try:
            src = open_export_source(path, facts)
        except InputError:
            if path.suffix.lower() != ".onnx":
                raise
            # A graph from elsewhere without its facts: the graph checks still apply.
            found = graph_findings(path, None, targets, precisions, size=img_size)
            return DoctorReport(str(path), f"{path.name} as given", targets, precisions, tuple(found))
        size = src.export_size(img_size, bool(dynamic))
        draft = src.draft("onnx", "fp32", size, bool(dynamic))
        graph = Path(tmp) / "model.onnx"
        src.write_onnx(graph, draft, opset=18)
        found = graph_findings(
            graph,
            draft,
            targets,
            precisions,
            size=size,
            calib=calib,
            images=images,
            advice=lambda s: src.size_advice(s, bool(dynamic)),
        )
    what = "the checkpoint's FP32 ONNX graph" if src.kind == "checkpoint" else f"{path.name}"
    return DoctorReport(str(path), f"{what} at {size[0]}x{size[1]}", targets, precisions, tuple(found))


def _choices(target: str | None, precision: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:

    # None: every target; "" is no target (get_target refuses it), never "all".
    targets = (get_target(target).name,) if target is not None else tuple(exportable_targets())
    if precision is None:
        return targets, tuple(p for p in PRECISIONS if any(p in TARGETS[t].precisions for t in targets))
    return targets, (parse_precision(precision),)

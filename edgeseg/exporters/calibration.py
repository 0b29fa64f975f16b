"""Which images an INT8 export calibrates on, and how well they cover what the model sees.

The source: `--calib` when given; otherwise, for a checkpoint trained on a folder, that training
folder (recorded in the checkpoint at train time as an absolute path) while it still exists; the
synthetic scenes for a model trained on them, or, with one warning line, when the recorded folder is
gone or the source records none (an ONNX file from elsewhere, an older checkpoint). The manifest's
`quantization.calibration_choice` says which and why.

Coverage, measured with the FP32 reference before any calibration runs: the class pixel shares of
the reference's own predictions on the calibration images against those on a comparison set
(`--val-data`, else the training folder when it is not the calibration set itself), the brightness
and contrast spread (mean and standard deviation of the luma per image, 0..255) of both, and the
image counts. A class the reference predicts on the comparison set (on at least `CLASS_MIN_SHARE`
of its pixels) but never on the calibration images gets one warning line: INT8 ranges were then
never measured on what that class looks like. Recorded as `quantization.calibration_coverage`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.evaluation.classwise import CLASS_MIN_SHARE
from edgeseg.exporters.calibset import load_calibration
from edgeseg.manifest import Manifest

if TYPE_CHECKING:
    from edgeseg.evaluation.parity import Reference
    from edgeseg.exporters.calibset import CalibrationSet
    from edgeseg.exporters.source import ExportSource

__all__ = ["COMPARE_IMAGES", "calibration_source", "coverage", "prepare_calibration"]

COMPARE_IMAGES = 100  # comparison images at most: shares and spreads settle well before that
_BATCH = 8


def calibration_source(src: ExportSource, calib: str | None) -> tuple[str | None, str, str | None]:
    """(folder or None for synthetic, why, a warning line or None) for an export of `src`."""
    if calib is not None:
        return calib, "given with --calib", None
    kind, folder = src.training_data()
    if kind == "synthetic":
        return None, "synthetic scenes: the model was trained on them", None
    if kind == "folder" and folder is not None:
        if Path(folder).is_dir():
            return folder, "the checkpoint's training folder (no --calib given)", None
        gone = f"the training folder '{folder}' recorded in the checkpoint no longer exists"
        return (
            None,
            f"synthetic scenes: {gone}",
            (f"calibrating INT8 on synthetic scenes: {gone}; pass --calib with representative images"),
        )
    why = "synthetic scenes: the source records no training folder"
    return (
        None,
        why,
        (
            "calibrating INT8 on synthetic scenes (the source records no training folder); pass --calib "
            "with representative images"
        ),
    )


def _predicted_pixels(reference: Reference, inputs: Sequence[np.ndarray]) -> np.ndarray:
    counts = np.zeros(reference.classes, np.int64)
    for start in range(0, len(inputs), _BATCH):
        x = np.concatenate(inputs[start : start + _BATCH])
        pred = reference.run(x).argmax(1)
        counts += np.bincount(pred.reshape(-1), minlength=reference.classes)[: reference.classes]
    return counts


def _spread(inputs: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """Brightness (mean luma) and contrast (luma standard deviation) per image, 0..255: min/median/max."""
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    bright, contrast = [], []
    for x in inputs:
        pixels = (x * s + m) * 255  # back to 0..255 in the model's channel order
        luma = pixels.mean(axis=1)  # equal weights: the order (RGB/BGR) does not matter
        bright.append(float(luma.mean()))
        contrast.append(float(luma.std()))

    def stats(v: list[float]) -> dict[str, float]:
        return {"min": round(min(v), 2), "median": round(float(np.median(v)), 2), "max": round(max(v), 2)}

    return {"brightness": stats(bright), "contrast": stats(contrast)}


def _shares(counts: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    total = max(int(counts.sum()), 1)
    return {n: round(float(c) / total, 6) for n, c in zip(names, counts, strict=True)}


def coverage(
    calib: CalibrationSet,
    reference: Reference,
    class_names: Sequence[str],
    compare: tuple[str, Sequence[np.ndarray]] | None = None,
) -> dict[str, Any]:
    """The coverage record (see the module): `compare` is (description, preprocessed inputs)."""
    calib_counts = _predicted_pixels(reference, calib.inputs)
    data: dict[str, Any] = {
        "calibration": {
            "images": calib.size,
            "predicted_share": _shares(calib_counts, class_names),
            **_spread(calib.inputs, reference.mean, reference.std),
        },
        "missing_classes": [],
    }
    if compare is not None and compare[1]:
        desc, inputs = compare
        counts = _predicted_pixels(reference, inputs)
        data["compared_with"] = {
            "source": desc,
            "images": len(inputs),
            "predicted_share": _shares(counts, class_names),
            **_spread(inputs, reference.mean, reference.std),
        }
        seen = counts >= CLASS_MIN_SHARE * max(int(counts.sum()), 1)
        data["missing_classes"] = [class_names[c] for c in np.flatnonzero(seen & (calib_counts == 0))]
    return data


def coverage_line(cov: dict[str, Any]) -> str:
    """One line for people: image counts, classes predicted, brightness ranges."""
    cal = cov["calibration"]
    predicted = sum(v > 0 for v in cal["predicted_share"].values())
    b = cal["brightness"]
    text = (
        f"calibration coverage: {cal['images']} images, {predicted}/{len(cal['predicted_share'])} classes "
        f"predicted, brightness {b['min']:.0f}-{b['max']:.0f}"
    )
    other = cov.get("compared_with")
    if other:
        ob = other["brightness"]
        seen = sum(v > 0 for v in other["predicted_share"].values())
        text += (
            f" (on {other['source']}: {other['images']} images, {seen} classes predicted, "
            f"brightness {ob['min']:.0f}-{ob['max']:.0f})"
        )
    return text


def _comparison(
    val_data: str | None, folder: str | None, training: str | None, manifest: Manifest
) -> tuple[str, Sequence[np.ndarray]] | None:

    if val_data is not None:
        other, desc = val_data, f"--val-data {val_data}"
    elif (
        training is not None
        and Path(training).is_dir()
        and (folder is None or Path(folder).resolve() != Path(training).resolve())
    ):
        other, desc = training, f"the training folder {training}"
    else:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-set warning is about calibration sets
        return desc, load_calibration(other, manifest, max_images=COMPARE_IMAGES).inputs


def prepare_calibration(
    src: ExportSource,
    calib_folder: str | None,
    val_data: str | None,
    manifest: Manifest,
    reference: Reference,
    log: Callable[[str], None],
) -> CalibrationSet:
    """The int8 calibration set of an export: source chosen, read, its coverage measured, logged in
    one line and recorded; warns (one line each) about a fallback source and classes it misses.
    `calib_folder` and `val_data` are the export's --calib and --val-data (None when not given)."""

    folder, why, warning = calibration_source(src, calib_folder)
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=2)
    calib = load_calibration(folder, manifest)
    kind, training = src.training_data()
    cov = coverage(
        calib,
        reference,
        manifest.class_names,
        _comparison(val_data, folder, training if kind == "folder" else None, manifest),
    )
    log(coverage_line(cov))
    if cov["missing_classes"]:
        other = cov["compared_with"]
        shares = ", ".join(f"{n} ({other['predicted_share'][n]:.2%})" for n in cov["missing_classes"])
        warnings.warn(
            f"the calibration images show no {shares} that the model predicts on {other['source']}; "
            "INT8 ranges may not fit them: add images with those classes to --calib",
            UserWarning,
            stacklevel=2,
        )
    return replace(calib, choice=why, coverage=cov)

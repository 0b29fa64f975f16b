"""ONNX Runtime INT8 for the CPU: the settings measured fastest on x86 (see edgeseg.exporters.onnx_quant
for the measurements) applied by the shared QDQ quantizer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeseg.exporters.calibset import CalibrationSet
from edgeseg.exporters.onnx_quant import quantize_qdq

__all__ = ["INT8_SETTINGS", "to_int8"]

# What the manifest records about ORT INT8 (besides the calibration set and method).
INT8_SETTINGS: dict[str, Any] = {
    "format": "QDQ",
    "activations": "uint8 asymmetric",
    "weights": "int8 symmetric per-channel",
    "op_types": ["Conv", "MaxPool", "Concat"],
}


def to_int8(
    src: Path,
    dst: Path,
    calib: CalibrationSet,
    *,
    input_name: str,
    method: str,
    metadata: dict[str, str],
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Quantize the float graph at `src` to a QDQ INT8 graph at `dst`, calibrated on `calib`.

    `method` is minmax, entropy or percentile; `exclude` names nodes kept in float. Returns what the
    manifest's `quantization` field records.
    """
    return quantize_qdq(
        src,
        dst,
        calib,
        input_name=input_name,
        method=method,
        metadata=metadata,
        exclude=exclude,
        op_types=INT8_SETTINGS["op_types"],
        activations="QUInt8",
        weights="QInt8",
        # Explicit, so the manifest's description stays true if ORT's defaults change.
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        label="onnxruntime static QDQ",
        settings=INT8_SETTINGS,
        purpose="INT8 quantization",
    )

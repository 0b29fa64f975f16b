"""Reduced-precision ONNX graphs: FP16 conversion and ONNX Runtime static INT8 (QDQ).

FP16: `onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)` (shipped with
onnxruntime, so no onnxconverter-common): weights and activations in float16, the `image` input and
`logits` output stay float32 so callers feed the same arrays as for fp32. ONNX Runtime's CPU provider
executes it (fp16 kernels where MLAS has them, Cast nodes it inserts elsewhere); parity runs it there.

INT8: `quant_pre_process` (shape inference + ORT graph optimisation: BN folding, Conv+ReLU fusion
patterns visible) then `quantize_static` in QDQ format with per-channel weights. Settings chosen by
measurement on this x86 CPU (AVX-512 VNNI), 256x256, U-Net depth 4 width 16, 2 threads:
fp32 157 ms; S8S8 symmetric QDQ 108 ms; S8S8 asymmetric 88 ms; U8S8 asymmetric 51 ms; U8S8 with
ConvTranspose left in float 49 ms. Two causes of the slow symmetric S8S8 graph: (1) a symmetric
activation range cannot absorb ReLU (an asymmetric uint8 range starting at 0 does the clipping), so
18 ReLU nodes stayed with a Q/DQ pair each and ORT could not fuse Conv+ReLU into one QLinearConv;
(2) ORT's x86 int8 kernels (VPDPBUSD) multiply unsigned by signed bytes, so int8 activations take a
slower path. So: uint8 asymmetric activations, int8 symmetric per-channel weights, and ConvTranspose
not quantized (its per-channel axis is 1 and ORT has no fused int8 ConvTranspose on CPU, so its Q/DQ
pair only adds work). TensorRT's symmetric S8S8 graph is a different export (see DESIGN.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeseg._io import disk_full_as_oserror, is_disk_full
from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError, first_line
from edgeseg.exporters.quantize import CALIB_METHODS, CalibrationSet, ort_reader

__all__ = ["INT8_SETTINGS", "conv_nodes", "quantize_qdq", "to_fp16", "to_int8"]

# What the manifest records about ORT INT8 (besides the calibration set and method).
INT8_SETTINGS: dict[str, Any] = {
    "format": "QDQ",
    "activations": "uint8 asymmetric",
    "weights": "int8 symmetric per-channel",
    "op_types": ["Conv", "MaxPool", "Concat"],
}


def to_fp16(src: Path, dst: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """Write the float16 version of the graph at `src` to `dst`, keeping float32 inputs/outputs."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "onnx", "FP16 ONNX export") from exc
    try:
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    except Exception as exc:
        raise EdgesegRuntimeError(f"FP16 conversion failed: {first_line(exc)}") from exc
    onnx.helper.set_model_props(model, metadata)
    onnx.save_model(model, str(dst))
    return {"method": "fp16 (onnxruntime.transformers.float16, float32 I/O)"}


def conv_nodes(path: Path) -> list[str]:
    """Names of the graph's Conv nodes in order (the first and last are the usual sensitive layers)."""
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]


def _preprocess(src: Path, dst: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Symbolic shape inference is for transformer-style dynamic shapes; ONNX's own suffices here.
    quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)


def quantize_qdq(
    src: Path,
    dst: Path,
    calib: CalibrationSet,
    *,
    input_name: str,
    method: str,
    metadata: dict[str, str],
    exclude: Sequence[str],
    op_types: Sequence[str],
    activations: str,
    weights: str,
    extra_options: dict[str, Any],
    label: str,
    settings: dict[str, Any],
    purpose: str,
) -> dict[str, Any]:
    """ONNX Runtime's static QDQ quantization of the float graph at `src` into `dst`, per channel,
    calibrated on `calib` with `method` (minmax, entropy or percentile), `op_types` quantized and the
    `exclude` nodes kept in float; `activations`/`weights` name QuantType members ("QInt8",
    "QUInt8"). `purpose` names the step in errors. The graph keeps `metadata` (quantize_static drops
    metadata_props). Returns the manifest's `quantization` record: `label`, the method, `settings`,
    the float nodes and the calibration set."""
    if method not in CALIB_METHODS:
        raise InputError(f"unknown --calib-method '{method}'; choose from {', '.join(CALIB_METHODS)}")
    try:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "onnx", purpose) from exc
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    pre = dst.with_name(f".{dst.stem}.pre.onnx")  # beside dst: inside the temporary bundle folder
    quiet = logging.getLogger()  # quantize_static logs a pre-processing hint at WARNING per call
    level = quiet.level
    try:
        # ONNX Runtime's shape inference and optimiser write in C++: a full disk is an OSError here.
        with disk_full_as_oserror(dst.parent, Path(src).stat().st_size):
            _preprocess(src, pre)
            quiet.setLevel(logging.ERROR)
            quantize_static(
                str(pre),
                str(dst),
                ort_reader(calib, input_name),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType[activations],
                weight_type=QuantType[weights],
                calibrate_method=methods[method],
                per_channel=True,
                op_types_to_quantize=list(op_types),
                nodes_to_exclude=list(exclude),
                extra_options=extra_options,
            )
    except (InputError, MissingDependencyError):
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise  # the CLI says so, with what to do, as for every other write
        raise EdgesegRuntimeError(f"{purpose} failed: {first_line(exc)}") from exc
    finally:
        quiet.setLevel(level)
        pre.unlink(missing_ok=True)
    model = onnx.load(str(dst))
    onnx.helper.set_model_props(model, metadata)
    onnx.save_model(model, str(dst))
    return {
        "method": label,
        "calibration_method": method,
        **settings,
        "float_nodes": list(exclude),
        **calib.to_manifest(),
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

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
from typing import TYPE_CHECKING, Any, Protocol

from edgeseg._io import disk_full_as_oserror, is_disk_full
from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError, first_line
from edgeseg.exporters.accuracy import Bound, onnx_int8_within
from edgeseg.exporters.calibset import CALIB_METHODS, CalibrationSet, ort_reader
from edgeseg.manifest import onnx_metadata

if TYPE_CHECKING:
    from edgeseg.exporters.contract import ExportJob

__all__ = ["Int8Quantizer", "conv_nodes", "quantize_qdq", "reduced_precision_graph", "to_fp16"]


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


class Int8Quantizer(Protocol):
    """A target's INT8 step: quantize the float graph at `src` into `dst` (see `quantize_qdq`)."""

    def __call__(
        self,
        src: Path,
        dst: Path,
        calib: CalibrationSet,
        *,
        input_name: str,
        method: str,
        metadata: dict[str, str],
        exclude: Sequence[str] = (),
    ) -> dict[str, Any]: ...


def reduced_precision_graph(job: ExportJob, dest: Path, int8: Int8Quantizer) -> dict[str, Any] | None:
    """Write the job's graph at its precision to `dest` and return the manifest's `quantization` record
    (None for fp32): the FP32 graph as is, its FP16 version, or `int8` of it on the job's calibration
    set, searched for a mixed-precision graph within the job's accuracy bound when it has one. The one
    ONNX precision step of every target whose model file is an ONNX graph."""
    if job.config.precision == "fp32":
        job.write_fp32_onnx(dest)
        return None
    scratch = job.workdir / ".fp32.onnx"  # inside the temporary bundle folder; removed below
    metadata = onnx_metadata(job.manifest)
    try:
        job.write_fp32_onnx(scratch)
        if job.config.precision == "fp16":
            return to_fp16(scratch, dest, metadata)
        calib = job.calibration_set()

        def quantize(path: Path, method: str, exclude: list[str]) -> dict[str, Any]:
            return int8(
                scratch, path, calib, input_name=job.manifest.input.name, method=method,
                metadata=metadata, exclude=exclude,
            )  # fmt: skip

        bound = Bound.of(job.config)
        if job.meter is None or bound is None:
            return quantize(dest, job.config.calib_method, [])
        return onnx_int8_within(
            quantize, dest, meter=job.meter, max_drop=job.config.max_drop,
            max_class_drop=job.config.max_class_drop, method=job.config.calib_method,
            convs=conv_nodes(scratch), log=job.log,
        )  # fmt: skip
    finally:
        scratch.unlink(missing_ok=True)
